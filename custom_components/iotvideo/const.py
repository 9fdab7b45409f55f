"""Constants of the iotvideo integration."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "iotvideo"
CONF_CLOUD_URL: Final = "cloud_url"
CONF_ACCESS_ID: Final = "access_id"
CONF_ACCESS_TOKEN: Final = "access_token"  # noqa: S105 - a field name, not a secret
#: Options: where `iotvideo restream` serves the cameras (``rtsp://user:pass@host:8554``).
CONF_RTSP_URL: Final = "rtsp_url"

#: Fired for every event a camera raises: tid, channel, topic, value, type bits, picture.
EVENT_IOTVIDEO: Final = "iotvideo_event"
#: Seconds a motion sensor stays on after an event that has no end of its own.
MOTION_HOLD: Final = 30.0
#: Seconds to wait, and wait again, for an event's picture to reach the cloud.
PICTURE_WAITS: Final = (1.0, 2.0, 4.0)
