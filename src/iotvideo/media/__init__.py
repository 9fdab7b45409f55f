"""Shared audio/video: sources, H.264 helpers, fan-out, muxing, WebRTC glue.

Used by both the device and the app SDK (and the cloud for recordings); imports nothing
from them.
"""
