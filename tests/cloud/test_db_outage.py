"""A PostgreSQL outage: requests get a code that says "retry shortly" (link 20004, vendor
API ResourceUnavailable), the cloud logs one line per outage and no traceback, and serves
again once the database is back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.world import World, app_sdk, eventually, make_world
from tests.services import Postgres
from tests.support import error_code, signed_post, start_cloud


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    server.start()
    try:
        yield server
    finally:
        server.remove()


async def test_a_database_outage_is_retry_shortly_and_one_log_line(
    postgres: Postgres, tmp_path: Path
) -> None:
    cloud = start_cloud(tmp_path / "data", postgres.url)
    try:
        world: World = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = world.device.tid
        async with app_sdk(cloud.url, world.owner) as sdk:
            assert await sdk.message.read_property(tid, "ProWritable")
            postgres.stop()
            for _ in range(20):
                with pytest.raises(IVError) as unavailable:
                    await sdk.message.read_property(tid, "ProWritable")
                assert unavailable.value.code == ErrorCode.IVTermErr_msg_calling_no_srv_addr
            vendor = await asyncio.to_thread(
                signed_post, cloud, world.key, "DescribeDevice", {"Tid": tid}
            )
            assert error_code(vendor) == "ResourceUnavailable"
            await _http_says_retry_shortly(cloud.url, tid, world.owner.token)
            postgres.start()

            async def served() -> None:
                try:
                    assert await sdk.message.read_property(tid, "ProWritable")
                except IVError as exc:
                    raise AssertionError(exc) from None

            await eventually(served, timeout=20)
        # Its log comes through a pipe read on a thread: wait for the line, then count.
        await asyncio.to_thread(cloud.wait_for_log, "the database is back", 20)
        log = "".join(cloud.log)
        assert log.count("the database unavailable") == 1, log
        assert "Traceback" not in log, log
    finally:
        cloud.stop()


async def _http_says_retry_shortly(url: str, tid: str, token: str) -> None:
    """The app-facing HTTP routes during the outage: 503 with code 20004, not a bare 500."""
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answers = [
            await http.get("/vas/service", params={"deviceId": tid}, headers=auth),
            await http.get("/vas/events", params={"deviceId": tid, "startTime": 0,
                                                  "endTime": 2_000_000_000}, headers=auth),
            await http.post(f"/whep/{tid}", content=b"v=0\r\n",
                            headers={**auth, "Content-Type": "application/sdp"}),
        ]  # fmt: skip
        health = await http.get("/healthz")
    for answer in answers:
        assert answer.status_code == 503, (answer.request.url, answer.text)
        assert answer.json()["code"] == ErrorCode.IVTermErr_msg_calling_no_srv_addr
        assert answer.headers["retry-after"].isdigit()
    assert health.status_code == 503 and health.json()["db"] != "ok"
