"""The UI flow that adds a user of an iotvideo cloud, and re-authenticates it."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.core import callback

from iotvideo.app import IoTVideo
from iotvideo.protocol.errors import ErrorCode, IVError

from .const import CONF_ACCESS_ID, CONF_ACCESS_TOKEN, CONF_CLOUD_URL, CONF_RTSP_URL, DOMAIN

USER_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_CLOUD_URL): str,
        vol.Required(CONF_ACCESS_ID): str,
        vol.Required(CONF_ACCESS_TOKEN): str,
    }
)
REAUTH_SCHEMA = vol.Schema({vol.Required(CONF_ACCESS_TOKEN): str})


async def check_login(cloud_url: str, access_id: str, access_token: str) -> str | None:
    """Sign in once: None when it works, else the form's error key."""
    if not cloud_url.startswith(("http://", "https://", "ws://", "wss://")):
        return "invalid_url"
    sdk = IoTVideo()
    try:
        sdk.setup(cloud_url)
        await sdk.register(access_id, access_token, timeout=15, fail_fast=True)
    except IVError as exc:
        if exc.code == ErrorCode.IVTermErr_msg_calling_check_token_error:
            return "invalid_auth"
        if exc.code == ErrorCode.IVConnError_ConnectFailed:
            return "cannot_connect"
        return "unknown"
    except ValueError:
        return "invalid_url"
    finally:
        with contextlib.suppress(IVError):
            await sdk.unregister()
    return None


class IotVideoConfigFlow(ConfigFlow, domain=DOMAIN):
    """Cloud URL, AccessId and AccessToken, checked by signing in."""

    VERSION = 1

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        return IotVideoOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            cloud = user_input[CONF_CLOUD_URL].rstrip("/")
            await self.async_set_unique_id(f"{cloud} {user_input[CONF_ACCESS_ID]}")
            self._abort_if_unique_id_configured()
            error = await check_login(
                cloud, user_input[CONF_ACCESS_ID], user_input[CONF_ACCESS_TOKEN]
            )
            if error is None:
                return self.async_create_entry(
                    title=user_input[CONF_ACCESS_ID], data={**user_input, CONF_CLOUD_URL: cloud}
                )
            errors["base"] = error
        return self.async_show_form(step_id="user", data_schema=USER_SCHEMA, errors=errors)

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            error = await check_login(
                entry.data[CONF_CLOUD_URL],
                entry.data[CONF_ACCESS_ID],
                user_input[CONF_ACCESS_TOKEN],
            )
            if error is None:
                return self.async_update_reload_and_abort(
                    entry, data_updates={CONF_ACCESS_TOKEN: user_input[CONF_ACCESS_TOKEN]}
                )
            errors["base"] = error
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=REAUTH_SCHEMA,
            errors=errors,
            description_placeholders={"access_id": entry.data[CONF_ACCESS_ID]},
        )


class IotVideoOptionsFlow(OptionsFlow):
    """Where restream serves the cameras (their stream source)."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            url = user_input.get(CONF_RTSP_URL, "").strip()
            if url and not url.startswith(("rtsp://", "rtsps://")):
                errors["base"] = "invalid_url"
            else:
                return self.async_create_entry(data={CONF_RTSP_URL: url})
        current = self.config_entry.options.get(CONF_RTSP_URL, "")
        schema = vol.Schema({vol.Optional(CONF_RTSP_URL, default=current): str})
        return self.async_show_form(step_id="init", data_schema=schema, errors=errors)
