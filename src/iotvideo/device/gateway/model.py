"""The thing model of a gateway device: what a bridged camera or NVR really has.

Per channel ``N`` (1..channels), ``ProReadonly.chnN``: whether its camera answers, the
size, frame rate and bit rate of its video as measured, and its motion detection (on or
off, sensitivity) as the config file sets it. ``Event.motion``: motion on a channel
(``{"chn", "start", "end"?, "score", "box"}``). Nothing else: no temperature, no LED.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_CHANNELS", "channel_path", "gateway_model"]

MAX_CHANNELS = 64

_CHANNEL = {
    "type": "struct",
    "fields": {
        "online": {"type": "uint32", "enum": [0, 1]},
        "width": {"type": "uint32", "max": 16384},
        "height": {"type": "uint32", "max": 16384},
        "fps": {"type": "float32", "min": 0, "max": 240},
        "kbps": {"type": "uint32", "max": 1_000_000},
        "detect": {"type": "bool"},
        "sensitivity": {"type": "float32", "min": 0, "max": 1},
    },
}


def channel_path(number: int) -> str:
    """Where channel ``number``'s state is reported."""
    return f"ProReadonly.chn{number}"


def gateway_model(channels: int = 1) -> dict[str, Any]:
    """The product model for gateway devices with up to ``channels`` channels (a camera
    product: 1; an NVR product: its channel count). Publish it with RunIotModel or
    ``iotvideo vendor publish-model PRODUCT --gateway-channels N``."""
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"channels: 1..{MAX_CHANNELS}")
    return {
        "ProReadonly": {f"chn{n}": _CHANNEL for n in range(1, channels + 1)},
        "Event": {"motion": {"type": "json"}},
    }
