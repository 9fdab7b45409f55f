"""Diagnostics: the entry's devices, models and values, with the secrets redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from . import IotVideoConfigEntry
from .const import CONF_ACCESS_TOKEN, CONF_RTSP_URL

REDACT = {CONF_ACCESS_TOKEN, CONF_RTSP_URL, "access_token", "token"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: IotVideoConfigEntry
) -> dict[str, Any]:
    hub = entry.runtime_data
    return {
        "entry": async_redact_data(dict(entry.data), REDACT),
        "options": async_redact_data(dict(entry.options), REDACT),
        "link": hub.sdk.link_status.value,
        "devices": {
            tid: {"model": device.model, "state": device.state, "channels": device.channels}
            for tid, device in hub.devices.items()
        },
    }
