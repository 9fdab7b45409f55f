"""Tokens that expire end what they grant. The cloud runs in this process, on a clock the
test moves forward (the same uvicorn, app and WebSockets as `iotvideo cloud`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn

from iotvideo.app import LinkStatus
from iotvideo.cloud import CloudSettings, create_app
from iotvideo.cloud.server import bind
from iotvideo.protocol.errors import IVError
from iotvideo.protocol.link import Push
from tests.link.world import User, World, app_sdk, make_world
from tests.support import CloudAddress


class Clock:
    """Real time plus an offset the test controls."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@asynccontextmanager
async def inproc_cloud(data: Path, clock: Clock) -> AsyncIterator[CloudAddress]:
    settings = CloudSettings(data=data, heartbeat_interval=0.05, log_level="warning")
    ready = asyncio.Event()
    app = create_app(settings, clock=clock, on_ready=ready.set)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", ws_max_size=1 << 20)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    await ready.wait()
    try:
        yield CloudAddress(data, settings.db_url, f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def test_expired_tokens(tmp_path: Path) -> None:
    clock = Clock()
    async with inproc_cloud(tmp_path, clock) as cloud:
        world: World = await asyncio.to_thread(make_world, cloud)
        tid = world.device.tid
        short = await world.avendor(
            "CreateUsrToken", AccessId=world.guest.access_id, UniqueId="s", TtlMinutes=1
        )
        grant = await world.avendor(
            "CreateDevToken", AccessId=world.stranger.access_id, Tids=[tid], TtlMinutes=1
        )
        async with (
            app_sdk(cloud.url, User(world.guest.access_id, short.AccessToken)) as guest,
            app_sdk(cloud.url, world.stranger) as visitor,
        ):
            await visitor.net_config.subscribe_device(grant.Data[0].AccessToken, tid)
            assert await visitor.message.read_property(tid, "ProWritable._logLevel.setVal") == 3
            ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            guest.add_status_listener(
                lambda s: (
                    s is LinkStatus.TOKEN_FAILED and not ended.done() and ended.set_result(None)
                )
            )
            dropped: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

            def on_unsubscribed(push: Push) -> None:
                if not dropped.done():
                    dropped.set_result(push.data)

            visitor.add_push_handler("unsubscribed", on_unsubscribed)

            clock.offset = 61  # both tokens are now expired
            async with asyncio.timeout(10):
                await ended
            assert guest.last_error is not None and guest.last_error.code == 20010
            with pytest.raises(IVError) as info:
                await visitor.message.read_property(tid, "ProWritable._logLevel")
            assert info.value.code == 8003
            async with asyncio.timeout(5):
                assert (await dropped)["tid"] == tid
            assert visitor.link_status is LinkStatus.ONLINE, "the visitor's own token is still good"
