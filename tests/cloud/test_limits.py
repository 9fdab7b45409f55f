"""Abuse limits: per vendor key, per client address, per link session, per user, and on
connections that never log in. Each test runs a cloud with small limits."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.test_frames import Raw, app_raw, raw
from tests.link.world import World, app_sdk, make_world
from tests.support import Cloud, error_code, signed_post, start_cloud

PROCESSING = ErrorCode.IVTermErr_msg_gdm_handle_processing


@pytest.fixture
def limited(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path / "data", env=request.param)
    yield cloud
    cloud.stop()


@pytest.mark.parametrize("limited", [{"IOTVIDEO_VENDOR_RATE": "5"}], indirect=True)
def test_vendor_requests_are_limited_per_key(limited: Cloud) -> None:
    busy, calm = limited.new_key(), limited.new_key()
    codes = Counter(
        error_code(signed_post(limited, busy, "DescribeProducts", {"Limit": 10, "Offset": i}))
        for i in range(30)
    )
    assert codes[None] >= 10 and codes["RequestLimitExceeded"] >= 10, codes
    # Another vendor's key is not slowed by the first one's burst.
    calm_call = signed_post(limited, calm, "DescribeProducts", {"Limit": 10, "Offset": 0})
    assert error_code(calm_call) is None


@pytest.mark.parametrize("limited", [{"IOTVIDEO_MAX_PENDING_LINKS": "5"}], indirect=True)
async def test_connections_that_never_log_in_are_capped(limited: Cloud) -> None:
    url = limited.url.replace("http", "ws") + "/link/app"
    idle = [await websockets.connect(url) for _ in range(5)]
    try:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url)
        assert refused.value.response.status_code == 403
    finally:
        for ws in idle:
            await ws.close()
    # Once they are gone, the next one is served.
    world = await asyncio.to_thread(make_world, limited, devices=1)
    async with app_sdk(limited.url, world.owner) as sdk:
        assert sdk.link_status.name == "ONLINE"


@pytest.mark.parametrize("limited", [{"IOTVIDEO_LOGIN_RATE": "0.5"}], indirect=True)
async def test_logins_are_limited_per_address_and_told_to_retry(limited: Cloud) -> None:
    world = await asyncio.to_thread(make_world, limited, devices=1)
    login = {"access_id": world.owner.access_id, "access_token": "usr_" + "x" * 43}
    outcomes: Counter[int] = Counter()
    for _ in range(8):  # bursts of ten times the rate: 5, then told to wait
        async with raw(world, "/link/app") as conn:
            await conn.send({"id": 1, "op": "login", "data": login})
            frame = await conn.recv()
            outcomes[frame.get("code", frame.get("data", {}).get("code"))] += 1
            if frame.get("op") == "bye":
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await conn.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
                assert "retry in" in frame["data"]["msg"]
    assert outcomes[ErrorCode.IVTermErr_msg_calling_check_token_error] == 5, outcomes
    assert outcomes[PROCESSING] == 3, outcomes


@pytest.mark.parametrize("limited", [{"IOTVIDEO_LINK_RATE": "10"}], indirect=True)
async def test_link_requests_are_limited_per_session(limited: Cloud) -> None:
    world = await asyncio.to_thread(make_world, limited, devices=1)
    async with app_raw(world) as conn:
        await _pings(conn, 60)
        codes = Counter([(await conn.recv())["code"] for _ in range(60)])
    assert codes[0] >= 20 and codes[PROCESSING] >= 20, codes


async def _pings(conn: Raw, count: int) -> None:
    for i in range(count):
        await conn.send(json.dumps({"id": 100 + i, "op": "ping", "data": {}}))


@pytest.mark.parametrize("limited", [{"IOTVIDEO_MAX_BIND_TOKENS": "3"}], indirect=True)
async def test_a_user_holds_a_bounded_number_of_bind_tokens(limited: Cloud) -> None:
    world: World = await asyncio.to_thread(make_world, limited, devices=1)
    async with app_sdk(limited.url, world.owner) as sdk:
        for _ in range(3):
            await sdk.net_config.get_bind_token()
        with pytest.raises(IVError) as refused:
            await sdk.net_config.get_bind_token()
        assert refused.value.code == ErrorCode.IVNetCfgErr_GetTokenErr
    async with app_sdk(limited.url, world.guest) as other:
        await other.net_config.get_bind_token()  # another user's allowance is their own
