"""The device SDK and the simulated camera."""

from iotvideo.device.client import DeviceClient, DeviceStatus, VersionInfo

__all__ = ["DeviceClient", "DeviceStatus", "VersionInfo"]
