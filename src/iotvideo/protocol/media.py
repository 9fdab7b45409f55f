"""The media session's wire: signaling fields, data channels, control messages, limits.

Signaling goes over the link: the app sends ``media.offer`` (``tid``, ``sdp``, ``kind``,
``source``, ``definition``) and gets the device's answer (``sdp``, ``video``, ``audio``).
Inside the WebRTC connection two data channels are opened by the app:

- ``ctl``: JSON control messages (:func:`control` / :func:`parse_control`), e.g.
  ``{"op": "definition", "value": "mid"}`` to switch resolution, ``{"op": "bye",
  "code": 20002}`` when the device ends the session;
- ``data``: the user's own bytes, at most :data:`MAX_PKG_BYTES` per message;
- ``file`` (downloads): the file's bytes as binary messages, then one text message
  ``{"op": "done" | "paused" | "error", ...}``.

Playback control on ``ctl``: ``seek`` (``time`` ms) -> ``seek.done`` (``time`` of the
keyframe it landed on), ``pause`` -> ``pause.done``, ``resume`` -> ``resume.done``,
``speed`` (``value``) -> ``speed.done``; the device says ``end`` when the recording ends.
Download: ``download`` (``file_time``, ``offset``) -> ``download.ready`` (``size``),
``download.pause``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "CONTROL_CHANNEL",
    "DATA_CHANNEL",
    "DEFAULT_MAX_VIEWERS",
    "DEFINITIONS",
    "FILE_CHANNEL",
    "KINDS",
    "MAX_CONNECTION_NUM",
    "MAX_PKG_BYTES",
    "MAX_SPEED",
    "MIN_SPEED",
    "NON_VIEWING",
    "control",
    "parse_control",
]

#: Largest custom-data message (the seed's MAX_PKG_BYTES; 21024 above it).
MAX_PKG_BYTES = 64_000
#: Connections one app may hold at once (the seed's MAX_CONNECTION_NUM; 21020 above it).
MAX_CONNECTION_NUM = 16
#: Viewers a device serves at once unless configured otherwise (20007 above it).
DEFAULT_MAX_VIEWERS = 4

CONTROL_CHANNEL = "ctl"
DATA_CHANNEL = "data"
#: A download's file bytes (binary messages) and its outcome (a text control message).
FILE_CHANNEL = "file"
#: monitor: the device's video and audio, talk back; live: plus the app's video;
#: transmission: custom data only; playback: the memory card's recordings (``at`` ms,
#: ``speed``); download: a recording file over the ``file`` channel.
KINDS = ("monitor", "live", "transmission", "playback", "download")
#: Kinds that do not take a viewing channel (the device's max_viewers).
NON_VIEWING = ("transmission", "download")
#: Playback speeds (the seed's 0.5..32).
MIN_SPEED, MAX_SPEED = 0.5, 32.0
#: The seed's definitions, lowest first.
DEFINITIONS = ("low", "mid", "high")


def control(op: str, **fields: Any) -> str:
    """A control message."""
    return json.dumps({"op": op, **fields})


def parse_control(message: str | bytes) -> dict[str, Any]:
    """A control message as a dict with ``op``; ValueError if it is not one."""
    try:
        data = json.loads(message)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("control message is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("op"), str):
        raise ValueError("control message has no op")
    return data
