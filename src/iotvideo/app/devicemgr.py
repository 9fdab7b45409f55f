"""``DeviceMgr``: device management (the seed's 设备管理): the firmware a device may get.

Works while the device is offline: the cloud answers from its firmware releases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from iotvideo.protocol.errors import IVError

if TYPE_CHECKING:
    from iotvideo.app.sdk import IoTVideo

__all__ = ["DeviceMgr"]


class DeviceMgr:
    def __init__(self, sdk: IoTVideo) -> None:
        self._sdk = sdk

    def query_new_version(
        self,
        device_id: str,
        current_version: str | None = None,
        language: str | None = None,
        *,
        completion: Callable[[dict[str, Any] | None, IVError | None], object] | None = None,
    ) -> asyncio.Task[dict[str, Any]]:
        """The seed's ``data``: ``{"downUrl", "version", "upgDescs"}``, or ``{}`` when the
        device is up to date. ``current_version`` defaults to the version the device last
        reported (a release limited to some old versions is offered only to those);
        ``language`` picks the release notes (en, zh, tc; default: the vendor's default).
        """
        data: dict[str, Any] = {"tid": device_id}
        if current_version is not None:
            data["current_version"] = current_version
        if language is not None:
            data["language"] = language

        async def ask() -> dict[str, Any]:
            try:
                result = await self._sdk.request("ota.query", data)
            except IVError as exc:
                if completion is not None:
                    completion(None, exc)
                raise
            if completion is not None:
                completion(result, None)
            return result

        return asyncio.ensure_future(ask())
