"""Services for what has no entity: passthrough data to a device, and the address of a
camera's cloud recording between two times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import voluptuous as vol
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr

from iotvideo.protocol.errors import IVError

from .const import DOMAIN
from .hub import IotVideoHub

SEND_DATA = vol.Schema(
    {
        vol.Required("device_id"): cv.string,
        vol.Required("data"): cv.string,
        vol.Optional("reply", default=True): cv.boolean,
    }
)
PLAYBACK_URL = vol.Schema(
    {
        vol.Required("device_id"): cv.string,
        vol.Required("start"): cv.datetime,
        vol.Required("end"): cv.datetime,
    }
)


def _target(hass: HomeAssistant, device_id: str) -> tuple[IotVideoHub, str]:
    """The hub and Tid of a Home Assistant device of this integration."""
    device = dr.async_get(hass).async_get(device_id)
    tids = [i[1] for i in device.identifiers if i[0] == DOMAIN] if device else []
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        hub: IotVideoHub = entry.runtime_data
        for tid in tids:
            if tid in hub.devices:
                return hub, tid
    raise ServiceValidationError(f"{device_id} is not an iotvideo camera")


def async_register_services(hass: HomeAssistant) -> None:
    async def send_data(call: ServiceCall) -> ServiceResponse:
        hub, tid = _target(hass, call.data["device_id"])
        try:
            answer = await hub.sdk.message.send_data_to_device(
                tid, call.data["data"].encode(), expect_response=call.data["reply"]
            )
        except IVError as exc:
            raise HomeAssistantError(f"{exc.message} ({exc.code})") from exc
        return {"reply": answer.decode("utf-8", "replace") if answer else ""}

    async def playback_url(call: ServiceCall) -> ServiceResponse:
        hub, tid = _target(hass, call.data["device_id"])
        start: datetime = call.data["start"]
        end: datetime = call.data["end"]
        try:
            address: Any = await hub.sdk.vas.get_video_play_address(
                tid, int(start.timestamp()), int(end.timestamp())
            )
        except IVError as exc:
            raise HomeAssistantError(f"{exc.message} ({exc.code})") from exc
        return {"url": address.get("url", "") if isinstance(address, dict) else str(address)}

    hass.services.async_register(
        DOMAIN, "send_data", send_data, SEND_DATA, supports_response=SupportsResponse.OPTIONAL
    )
    hass.services.async_register(
        DOMAIN,
        "playback_url",
        playback_url,
        PLAYBACK_URL,
        supports_response=SupportsResponse.ONLY,
    )
