"""A captured vendor request cannot be replayed later, nor sent as another action."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from iotvideo.protocol import tc3
from tests.inproc import Clock, inproc_cloud
from tests.support import CloudAddress, asnapshot, error_code, new_key, signed_post


async def test_replays_and_action_swaps_are_refused(tmp_path: Path) -> None:
    clock = Clock()
    async with inproc_cloud(tmp_path, clock) as cloud:
        key = await asyncio.to_thread(new_key, cloud.db)

        def post(action: str, body: dict[str, object], ts: int, sent_as: str = "") -> str | None:
            headers = {"X-TC-Action": sent_as} if sent_as else None
            response = signed_post(cloud, key, action, body, timestamp=ts, headers=headers)
            return error_code(response)

        async def call(*args: object, **kwargs: object) -> str | None:
            return await asyncio.to_thread(post, *args, **kwargs)

        assert await call("CreateAppUsr", {"CunionId": "alice"}, int(clock())) is None
        access_id = await _access_id(cloud, key, clock)
        describe = {"AccessId": access_id}
        ts = int(clock())
        assert await call("DescribeBindDev", describe, ts) is None
        # Two identical requests in the same second are both legitimate.
        assert await call("DescribeBindDev", describe, ts) is None
        # Past the repeat window the same bytes are refused: as another action (a swap,
        # and nothing changes), and as the same one (a replay).
        clock.offset += 3
        before = await asnapshot(cloud.db)
        swapped = await call("DescribeBindDev", describe, ts, sent_as="DeleteAppUsr")
        assert swapped == "AuthFailure.SignatureFailure"
        assert await asnapshot(cloud.db) == before
        assert await call("DescribeBindDev", describe, ts) == "AuthFailure.SignatureExpire"
        assert await call("DescribeBindDev", describe, int(clock())) is None


async def _access_id(cloud: CloudAddress, key: tuple[str, str], clock: Clock) -> str:
    response = await asyncio.to_thread(
        signed_post, cloud, key, "CreateAppUsr", {"CunionId": "alice"}, timestamp=int(clock()) + 1
    )
    return str(response.json()["Response"]["AccessId"])


async def test_a_request_that_signs_its_action_cannot_be_swapped_at_all(tmp_path: Path) -> None:
    """Clients that sign X-TC-Action (iotvideo vendor call) close the window for swaps."""
    async with inproc_cloud(tmp_path, Clock()) as cloud:
        key = await asyncio.to_thread(new_key, cloud.db)
        payload = json.dumps({"Limit": 10, "Offset": 0}).encode()
        headers = tc3.sign_request(
            *key, action="DescribeProducts", payload=payload, host=cloud.endpoint,
            timestamp=int(time.time()), sign_action=True,
        )  # fmt: skip
        assert "x-tc-action" in headers["Authorization"]
        async with httpx.AsyncClient(base_url=cloud.url, timeout=30) as http:
            first = await http.post("/", content=payload, headers=headers)
            assert error_code(first) is None
            swapped = {**headers, "X-TC-Action": "DescribeOtaVersions"}
            refused = await http.post("/", content=payload, headers=swapped)
            assert error_code(refused) == "AuthFailure.SignatureFailure"
