"""The iotvideo integration: the platform's cameras, their settings, actions and events.

One config entry is one app user of an iotvideo cloud (its URL, AccessId and
AccessToken). Each device the user may see becomes a Home Assistant device, with a
camera per channel and entities made from its product's thing model; values follow the
link's pushes.
"""

from __future__ import annotations

from typing import TypeAlias

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from iotvideo.protocol.errors import ErrorCode, IVError

from .const import CONF_ACCESS_ID, CONF_ACCESS_TOKEN, CONF_CLOUD_URL, DOMAIN
from .hub import IotVideoHub
from .services import async_register_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.CAMERA,
    Platform.IMAGE,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.TEXT,
]

IotVideoConfigEntry: TypeAlias = ConfigEntry[IotVideoHub]

#: Codes that mean the token is no good (re-authenticate), not that the cloud is away.
AUTH_FAILED = {
    ErrorCode.IVTermErr_msg_calling_check_token_error,
}


async def async_setup_entry(hass: HomeAssistant, entry: IotVideoConfigEntry) -> bool:
    """Sign in, load the devices, set the platforms up."""

    @callback
    def token_failed() -> None:
        entry.async_start_reauth(hass)

    hub = IotVideoHub(
        hass,
        entry.data[CONF_CLOUD_URL],
        entry.data[CONF_ACCESS_ID],
        entry.data[CONF_ACCESS_TOKEN],
        on_token_failed=token_failed,
    )
    try:
        await hub.connect()
    except IVError as exc:
        await hub.close()
        if exc.code in AUTH_FAILED:
            raise ConfigEntryAuthFailed(exc.message) from exc
        raise ConfigEntryNotReady(f"{exc.message} ({exc.code})") from exc
    entry.runtime_data = hub
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_on_unload(entry.add_update_listener(_options_changed))
    return True


async def _options_changed(hass: HomeAssistant, entry: IotVideoConfigEntry) -> None:
    await hass.config_entries.async_reload(entry.entry_id)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """The services of the features that have no entity."""
    async_register_services(hass)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: IotVideoConfigEntry) -> bool:
    """Unload the platforms, then close every player and the link."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.close()
    return unloaded
