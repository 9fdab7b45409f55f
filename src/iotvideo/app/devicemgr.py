"""``DeviceMgr``: device management (the seed's 设备管理): the firmware a device may get.

Works while the device is offline: the cloud answers from its firmware releases.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from iotvideo.app.calls import Completion, call, seed_json

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
        completion: Completion | None = None,
    ) -> asyncio.Task[dict[str, Any]]:
        """The seed's ``data``: ``{"downUrl", "version", "upgDescs"}``, or ``{}`` when the
        device is up to date. ``current_version`` defaults to the version the device last
        reported (a release limited to some old versions is offered only to those);
        ``language`` picks the release notes (en, zh, tc; default: the vendor's default).
        ``completion(json, error)`` gets the seed's whole answer as JSON text.
        """
        data: dict[str, Any] = {"tid": device_id}
        if current_version is not None:
            data["current_version"] = current_version
        if language is not None:
            data["language"] = language

        return call(self._sdk.request("ota.query", data), completion, shape=seed_json)
