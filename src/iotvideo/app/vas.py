"""``VAS``: value-added services (the seed's 增值服务): cloud storage and events.

Each call is a task (:mod:`iotvideo.app.calls`): awaited, it gives the seed's ``data``
(lists unwrapped) and raises :class:`IVError` with the answer's code when refused; a
``completion(json, error)`` callback gets the seed's whole answer as JSON text.
``token`` (default: the logged-in user's) may be a device access token for devices
reached without a binding (the seed's anonymous access).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from iotvideo.app.calls import Completion, operation, seed_json
from iotvideo.protocol.errors import ErrorCode, IVError

if TYPE_CHECKING:
    from iotvideo.app.sdk import IoTVideo

__all__ = ["VAS"]


class VAS:
    def __init__(self, sdk: IoTVideo, *, timeout: float = 10.0) -> None:
        self._sdk = sdk
        self.timeout = timeout

    async def _get(
        self,
        path: str,
        params: dict[str, Any],
        token: str | None,
        *,
        json_body: dict[str, Any] | None = None,
    ) -> Any:
        headers = {"authorization": f"Bearer {token or self._sdk.access_token}"}
        url = self._sdk.cloud_url + path
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                if json_body is not None:
                    response = await http.post(url, json=json_body, headers=headers)
                else:
                    response = await http.get(url, params=params, headers=headers)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IVError.of(ErrorCode.IVConnError_NotAvailableNow, str(exc)) from None
        if body.get("code", -1) != 0:
            raise IVError.of(int(body.get("code", 8000)), str(body.get("msg", "")) or None)
        return body.get("data", {})

    @operation(seed_json)
    async def get_service_detail_info(
        self,
        device_id: str,
        source_id: int = 0,
        *,
        token: str | None = None,
        completion: Completion | None = None,
    ) -> dict[str, Any]:
        """Cloud-storage status (1 in use, 2 to renew, 3 expired), times and order."""
        return dict(
            await self._get("/vas/service", {"deviceId": device_id, "sourceId": source_id}, token)
        )

    @operation(lambda days: seed_json({"list": days}))
    async def get_video_date_list(
        self,
        device_id: str,
        timezone: int = 0,
        source_id: int = 0,
        *,
        token: str | None = None,
        completion: Completion | None = None,
    ) -> list[int]:
        """The start (UTC seconds) of each day with video, in a zone ``timezone`` seconds
        east of UTC."""
        params = {"deviceId": device_id, "timezone": timezone, "sourceId": source_id}
        return list((await self._get("/vas/dates", params, token))["list"])

    @operation(lambda ranges: seed_json({"list": ranges}))
    async def get_video_play_list(
        self,
        device_id: str,
        start_time: int,
        end_time: int,
        source_id: int = 0,
        *,
        token: str | None = None,
        completion: Completion | None = None,
    ) -> list[dict[str, int]]:
        """Recorded ranges ``{"start", "end"}`` (UTC seconds); a day at most."""
        params = {
            "deviceId": device_id,
            "startTime": start_time,
            "endTime": end_time,
            "sourceId": source_id,
        }
        return list((await self._get("/vas/playlist", params, token))["list"])

    @operation(seed_json)
    async def get_video_play_address(
        self,
        device_id: str,
        start_time: int,
        end_time: int = 0,
        source_id: int = 0,
        *,
        token: str | None = None,
        completion: Completion | None = None,
    ) -> dict[str, Any]:
        """``{"url", "startTime", "endTime", "endflag"}``: an m3u8 any HLS player opens;
        ``endflag`` false: ask again from ``endTime`` for the rest."""
        params = {
            "deviceId": device_id,
            "startTime": start_time,
            "endTime": end_time,
            "sourceId": source_id,
        }
        return dict(await self._get("/vas/address", params, token))

    @operation(seed_json)
    async def get_event_list(
        self,
        device_id: str,
        start_time: int,
        end_time: int,
        page_size: int = 50,
        type_masks: list[int] | int | None = None,
        valid_cloud_storage: bool = False,
        source_id: int = 0,
        *,
        token: str | None = None,
        completion: Completion | None = None,
    ) -> dict[str, Any]:
        """Events with start in [start_time, end_time), newest first, ``page_size`` (1..50)
        of them; ``pageEnd`` says whether more follow (ask again with ``end_time`` = the
        last event's ``startTime``). ``type_masks``: within a mask any bit, across masks
        every mask. Picture: ``imgUrlPrefix + imgUrlSuffix``; thumbnail: that plus
        ``thumbUrlSuffix``."""
        params: dict[str, Any] = {
            "deviceId": device_id,
            "startTime": start_time,
            "endTime": end_time,
            "pageSize": page_size,
            "validCloudStorage": "true" if valid_cloud_storage else "false",
            "sourceId": source_id,
        }
        if isinstance(type_masks, int):  # one mask, as the seed's examples pass it
            type_masks = [type_masks]
        if type_masks:
            params["typeMasks"] = ",".join(str(int(m)) for m in type_masks)
        return dict(await self._get("/vas/events", params, token))

    @operation(lambda deleted: seed_json({"deleted": deleted}))
    async def delete_events(
        self,
        device_id: str,
        event_ids: list[str],
        *,
        token: str | None = None,
        completion: Completion | None = None,
    ) -> list[str]:
        """Delete events (and their pictures); the ids that were deleted."""
        body = {"deviceId": device_id, "eventIds": list(event_ids)}
        return list((await self._get("/vas/events/delete", {}, token, json_body=body))["deleted"])
