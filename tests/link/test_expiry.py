"""Tokens that expire end what they grant. The cloud runs in this process, on a clock the
test moves forward (the same uvicorn, app and WebSockets as `iotvideo cloud`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from iotvideo.app import LinkStatus
from iotvideo.protocol.errors import IVError
from iotvideo.protocol.link import Push
from tests.inproc import Clock, inproc_cloud
from tests.link.world import User, World, app_sdk, make_world


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
