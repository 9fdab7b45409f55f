"""``NetConfig``: device subscription (the seed's subscribeDevice). Provisioning (bind
tokens, LAN discovery, AP and QR configuration) builds on this."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from iotvideo.protocol.errors import IVError

if TYPE_CHECKING:
    from iotvideo.app.sdk import IoTVideo

__all__ = ["NetConfig"]

log = logging.getLogger("iotvideo.app")


class NetConfig:
    def __init__(self, sdk: IoTVideo) -> None:
        self._sdk = sdk
        #: Subscriptions to send again after every reconnect: device_id -> token.
        self._subscriptions: dict[str, str] = {}
        sdk.add_login_hook(self._resubscribe)

    def subscribe_device(
        self,
        access_token: str,
        device_id: str,
        *,
        completion: Callable[[Any, IVError | None], None] | None = None,
    ) -> asyncio.Task[dict[str, Any]]:
        """Reach ``device_id`` with a token that grants it: the AccessToken CreateBinding
        returned (not the BindToken), a CreateDevToken token, or an anonymous one.

        The subscription is renewed after every reconnect. Returns ``{"tid", "role",
        "online"}``.
        """

        async def subscribe() -> dict[str, Any]:
            reply = await self._sdk.request(
                "subscribe", {"tid": device_id, "access_token": access_token}
            )
            self._subscriptions[device_id] = access_token
            return reply

        task = asyncio.ensure_future(subscribe())
        if completion is not None:
            task.add_done_callback(
                lambda t: (
                    completion(None, t.exception())  # type: ignore[arg-type]
                    if t.exception()
                    else completion(t.result(), None)
                )
            )
        return task

    async def unsubscribe_device(self, device_id: str) -> None:
        self._subscriptions.pop(device_id, None)
        await self._sdk.request("unsubscribe", {"tid": device_id})

    async def _resubscribe(self) -> None:
        for device_id, token in list(self._subscriptions.items()):
            try:
                await self._sdk.request("subscribe", {"tid": device_id, "access_token": token})
            except IVError as exc:
                log.warning("could not renew the subscription to %s: %s", device_id, exc)
                self._subscriptions.pop(device_id, None)
