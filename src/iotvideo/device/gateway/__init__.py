"""The gateway: many cameras and NVRs, each a device of the platform, in one process.

``iotvideo gateway --config cameras.toml`` runs it (docs/gateway.md): devices from
their certificate files, each with channels (a camera has one, an NVR several), every
channel a source with its viewers, card recorder, cloud recorder and motion detector.
"""
