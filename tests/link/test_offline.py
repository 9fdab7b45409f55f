"""Outages: writes kept for offline devices, a cloud restart mid-session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotvideo.app import IoTVideo, LinkStatus
from iotvideo.device import DeviceClient, DeviceStatus
from tests.link.world import Inbox, World, app_sdk, device_client, make_world
from tests.support import start_cloud


async def test_a_write_while_offline_is_delivered_at_login(world: World) -> None:
    received: list[int] = []

    def install(dc: DeviceClient) -> None:
        dc.on_write("nightMode")(lambda value: received.append(value))

    async with app_sdk(world.cloud.url, world.owner) as sdk:
        result = await sdk.message.write_property(
            world.device.tid, "ProWritable.nightMode.setVal", "2"
        )
        assert (result["setVal"], result["stVal"]) == (2, 0), "stored, not yet applied"
        inbox = Inbox(sdk)
        async with device_client(world.cloud.url, world.device, install):
            await inbox.property("ProWritable.nightMode", setVal=2, stVal=2)
        assert received[0] == 2
        assert await sdk.message.read_property(world.device.tid, "ProWritable.nightMode.stVal") == 2


def _online(sdk: IoTVideo) -> asyncio.Future[None]:
    """Resolves the next time the SDK is online again after going offline."""
    back: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    lost = False

    def watch(status: LinkStatus) -> None:
        nonlocal lost
        lost = lost or status is LinkStatus.OFFLINE
        if lost and status is LinkStatus.ONLINE and not back.done():
            back.set_result(None)

    sdk.add_status_listener(watch)
    return back


@pytest.fixture
def own_world(tmp_path: Path) -> Iterator[World]:
    """A world on a cloud of its own, which the test may restart."""
    world = make_world(start_cloud(tmp_path))
    try:
        yield world
    finally:
        world.cloud.stop()


async def test_cloud_restart_mid_session(own_world: World, tmp_path: Path) -> None:
    world = own_world
    port = world.cloud.port
    url = world.cloud.url
    grant = world.vendor(
        "CreateDevToken", AccessId=world.stranger.access_id, Tids=[world.device.tid], TtlMinutes=30
    )
    async with (
        device_client(url, world.device) as dc,
        app_sdk(url, world.owner) as owner,
        app_sdk(url, world.stranger) as visitor,
    ):
        await visitor.net_config.subscribe_device(grant.Data[0].AccessToken, world.device.tid)
        await owner.message.write_property(world.device.tid, "ProWritable.nightMode.setVal", "1")
        owner_back, visitor_back = _online(owner), _online(visitor)
        device_back: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_status(status: DeviceStatus, _error: object) -> None:
            if status is DeviceStatus.ONLINE and not device_back.done():
                device_back.set_result(None)

        dc.on_status = on_status
        assert await asyncio.to_thread(world.cloud.stop) == 0
        world.cloud = await asyncio.to_thread(start_cloud, tmp_path, port=port)
        async with asyncio.timeout(20):
            await asyncio.gather(owner_back, visitor_back, device_back)

        night = await owner.message.read_property(world.device.tid, "ProWritable.nightMode")
        assert (night["setVal"], night["stVal"]) == (1, 1), "no ProWritable value was lost"
        assert dc.writable["nightMode"] == 1
        # The visitor's subscription (a device token) was renewed after the reconnect.
        inbox = Inbox(visitor)
        await dc.report("ProReadonly.temperature", 12.5)
        await inbox.property("ProReadonly.temperature", stVal=12.5)
