"""A camera entity per channel.

- Live view: Home Assistant's native WebRTC. The browser's offer goes to the device
  through the platform's own signaling (the app SDK's ``media.offer``), its trickled
  candidates follow (``media.candidate``), and closing the view ends the device's session
  (``media.close``): viewing needs no restream.
- Stream source (recording, other integrations): `iotvideo restream`'s RTSP URL when the
  entry's options name one.
- Still image: a snapshot from the device over the same WebRTC path.
"""

from __future__ import annotations

import logging

from homeassistant.components.camera import (
    Camera,
    CameraEntityFeature,
    WebRTCAnswer,
    WebRTCError,
    WebRTCSendMessage,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from webrtc_models import RTCIceCandidateInit

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
        self._attr_supported_features = CameraEntityFeature.STREAM
        #: Home Assistant's WebRTC sessions -> the device's media sessions.
        self._sessions: dict[str, int] = {}

    @property
    def _path(self) -> str:
        return self.device.tid + (f"/{self.channel}" if self.channel else "")

    async def stream_source(self) -> str | None:
        return f"{self._rtsp}/{self._path}" if self._rtsp else None

    # Live view: native WebRTC through the platform's signaling

    async def async_handle_async_webrtc_offer(
        self, offer_sdp: str, session_id: str, send_message: WebRTCSendMessage
    ) -> None:
        request = {
            "tid": self.device.tid,
            "sdp": offer_sdp,
            "kind": "monitor",
            "source": str(self.channel) if self.channel else "",
            "definition": "high",
        }
        try:
            answer = await self.hub.sdk.request("media.offer", request)
        except IVError as exc:
            send_message(WebRTCError("iotvideo_offer_refused", f"{exc.message} ({exc.code})"))
            return
        self._sessions[session_id] = int(answer["session"])
        send_message(WebRTCAnswer(str(answer["sdp"])))

    async def async_on_webrtc_candidate(
        self, session_id: str, candidate: RTCIceCandidateInit
    ) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            return
        data: dict[str, object] = {
            "tid": self.device.tid,
            "session": session,
            "candidate": candidate.candidate,
        }
        if candidate.sdp_mid is not None:
            data["mid"] = candidate.sdp_mid
        if candidate.sdp_m_line_index is not None:
            data["index"] = candidate.sdp_m_line_index
        try:
            await self.hub.sdk.request("media.candidate", data)
        except IVError as exc:
            _LOGGER.debug("candidate for %s not taken: %s", self.device.tid, exc)

    @callback
    def close_webrtc_session(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self.hass.async_create_task(self._close(session), eager_start=True)

    async def _close(self, session: int) -> None:
        try:
            await self.hub.sdk.request("media.close", {"tid": self.device.tid, "session": session})
        except IVError as exc:  # the device went away: its session went with it
            _LOGGER.debug("closing %s's session %s: %s", self.device.tid, session, exc)

    async def async_will_remove_from_hass(self) -> None:
        for session in list(self._sessions.values()):
            await self._close(session)
        self._sessions.clear()

    # Still image

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
