"""A camera entity per channel: the still image from the device itself (a snapshot over
the platform's WebRTC path), the stream from `iotvideo restream`'s RTSP URL when the
entry's options name one."""

from __future__ import annotations

import logging

from homeassistant.components.camera import Camera, CameraEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from iotvideo.app.player import MonitorPlayer
from iotvideo.protocol.errors import IVError

from . import IotVideoConfigEntry
from .const import CONF_RTSP_URL
from .entity import IotVideoEntity
from .hub import DeviceData, IotVideoHub

_LOGGER = logging.getLogger(__name__)


async def async_setup_entry(
    hass: HomeAssistant, entry: IotVideoConfigEntry, add: AddEntitiesCallback
) -> None:
    hub = entry.runtime_data
    rtsp = entry.options.get(CONF_RTSP_URL) or None
    add(
        IotVideoCamera(hub, device, chn, rtsp)
        for device in hub.devices.values()
        for chn in device.channels
    )


class IotVideoCamera(IotVideoEntity, Camera):
    def __init__(
        self, hub: IotVideoHub, device: DeviceData, channel: int, rtsp: str | None
    ) -> None:
        IotVideoEntity.__init__(self, hub, device, f"camera_{channel}")
        Camera.__init__(self)
        self.channel = channel
        self._attr_name = None if channel == 0 else f"Channel {channel}"
        self._rtsp = rtsp.rstrip("/") if rtsp else None
        if self._rtsp:
            self._attr_supported_features = CameraEntityFeature.STREAM

    @property
    def _path(self) -> str:
        return self.device.tid + (f"/{self.channel}" if self.channel else "")

    async def stream_source(self) -> str | None:
        return f"{self._rtsp}/{self._path}" if self._rtsp else None

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """A JPEG of what the camera sees now, from the device over WebRTC."""
        player = MonitorPlayer(
            self.device.tid,
            sdk=self.hub.sdk,
            source_id=str(self.channel) if self.channel else None,
            definition="high",  # the best picture, as restream streams it
        )
        player.mute = True
        try:
            await player.play(timeout=15)
            return await player.snapshot(timeout=10)
        except IVError as exc:
            _LOGGER.warning("no picture from %s: %s (%s)", self.device.tid, exc.message, exc.code)
            return None
        finally:
            await player.stop()
