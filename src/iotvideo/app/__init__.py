"""The app SDK: the seed's IoTVideo SDK, in Python.

::

    from iotvideo.app import IoTVideo

    sdk = IoTVideo()
    sdk.setup("http://cloud.example:8080")
    await sdk.register(access_id, access_token)
    await sdk.net_config.subscribe_device(binding_token, device_id)
    print(await sdk.message.read_property(device_id, "ProReadonly.temperature"))

    player = MonitorPlayer(device_id, sdk=sdk)
    await player.play()
    async for frame in player.frames():   # av.VideoFrame
        ...
"""

from iotvideo.app.devicemgr import DeviceMgr
from iotvideo.app.messages import MAX_DATA_SIZE, DeviceMessage, MessageDelegate, MessageMgr
from iotvideo.app.netconfig import LanConfig, LANDevice, NetConfig, QRCode
from iotvideo.app.playback import (
    DownloadResult,
    FileDownloader,
    PlaybackItem,
    PlaybackPage,
    PlaybackPlayer,
    get_playback_list,
    get_record_dates,
)
from iotvideo.app.player import (
    Connection,
    ConnectionDelegate,
    LivePlayer,
    MonitorPlayer,
    PlayerDelegate,
    PlayerStatus,
    Transmission,
)
from iotvideo.app.sdk import IoTVideo, IoTVideoDelegate, LogLevel
from iotvideo.app.status import LinkStatus

__all__ = [
    "MAX_DATA_SIZE",
    "Connection",
    "ConnectionDelegate",
    "DeviceMessage",
    "DeviceMgr",
    "DownloadResult",
    "FileDownloader",
    "IoTVideo",
    "IoTVideoDelegate",
    "LANDevice",
    "LanConfig",
    "LinkStatus",
    "LivePlayer",
    "LogLevel",
    "MessageDelegate",
    "MessageMgr",
    "MonitorPlayer",
    "NetConfig",
    "PlaybackItem",
    "PlaybackPage",
    "PlaybackPlayer",
    "PlayerDelegate",
    "PlayerStatus",
    "QRCode",
    "Transmission",
    "get_playback_list",
    "get_record_dates",
]
