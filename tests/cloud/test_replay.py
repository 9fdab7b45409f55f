"""A captured vendor request cannot be replayed later, nor sent as another action."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
        # The same bytes as another action: refused, and nothing changes.
        before = await asnapshot(cloud.db)
        swapped = await call("DescribeBindDev", describe, ts, sent_as="DeleteAppUsr")
        assert swapped == "AuthFailure.SignatureFailure"
        assert await asnapshot(cloud.db) == before
        # The same request later than the repeat window: a replay.
        clock.offset += 3
        assert await call("DescribeBindDev", describe, ts) == "AuthFailure.SignatureExpire"
        assert await call("DescribeBindDev", describe, int(clock())) is None


async def _access_id(cloud: CloudAddress, key: tuple[str, str], clock: Clock) -> str:
    response = await asyncio.to_thread(
        signed_post, cloud, key, "CreateAppUsr", {"CunionId": "alice"}, timestamp=int(clock()) + 1
    )
    return str(response.json()["Response"]["AccessId"])
