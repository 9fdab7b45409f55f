"""The app SDK: the seed's IoTVideo SDK, in Python.

::

    from iotvideo.app import IoTVideo

    sdk = IoTVideo()
    sdk.setup("http://cloud.example:8080")
    await sdk.register(access_id, access_token)
    await sdk.net_config.subscribe_device(binding_token, device_id)
    print(await sdk.message.read_property(device_id, "ProReadonly.temperature"))
"""

from iotvideo.app.messages import MAX_DATA_SIZE, DeviceMessage, MessageDelegate, MessageMgr
from iotvideo.app.netconfig import LanConfig, LANDevice, NetConfig, QRCode
from iotvideo.app.sdk import IoTVideo, IoTVideoDelegate, LogLevel
from iotvideo.app.status import LinkStatus

__all__ = [
    "MAX_DATA_SIZE",
    "DeviceMessage",
    "IoTVideo",
    "IoTVideoDelegate",
    "LANDevice",
    "LanConfig",
    "LinkStatus",
    "LogLevel",
    "MessageDelegate",
    "MessageMgr",
    "NetConfig",
    "QRCode",
]
