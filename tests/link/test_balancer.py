"""Three cloud instances behind HAProxy (deploy/haproxy.cfg, as shipped) on one PostgreSQL,
one Redis and one shared data directory: a hundred devices and their apps connect through
the balancer; one instance is killed (SIGKILL) while they send events and the apps write;
every client is back through the balancer, and no acknowledged event or write is lost or
doubled."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import func, select

from iotvideo.app import IoTVideo, LinkStatus
from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import device_events, devices
from iotvideo.device import DeviceClient, DeviceStatus
from tests.link.world import World, app_sdk, fast_backoff, make_world
from tests.services import haproxy
from tests.support import Cloud, CloudAddress, start_cloud

pytestmark = pytest.mark.postgres

REDIS = "redis://127.0.0.1:6379/0"
DEVICES = 100
EVENTS = 5


@pytest.fixture
def fleet(pg_schema_url: str, tmp_path: Path) -> Iterator[tuple[list[Cloud], str]]:
    shared = tmp_path / "shared"  # recordings, pictures, firmware, url.key: one for all
    # Three instances x 2 x 10 connections stay under PostgreSQL's 100 (docs/ops.md).
    env = {"IOTVIDEO_URL_SECRET": "ab" * 32, "IOTVIDEO_DB_POOL": "10"}
    clouds = [start_cloud(shared, pg_schema_url, bus=REDIS, env=env) for _ in range(3)]
    try:
        with haproxy([c.url.removeprefix("http://") for c in clouds]) as (url, _log):
            yield clouds, url
    finally:
        for cloud in clouds:
            cloud.stop()  # a killed one too: its log pipe is closed


async def linked(sdk: IoTVideo) -> None:
    """Until the app's link is online (it reconnects by itself after its instance died)."""
    back = asyncio.Event()
    sdk.add_status_listener(lambda status: status is LinkStatus.ONLINE and back.set())
    if sdk.link_status is not LinkStatus.ONLINE:
        async with asyncio.timeout(30):
            await back.wait()


async def online(devices_: list[DeviceClient], since: dict[str, int]) -> float:
    """Seconds until every device has logged in again after ``since`` (its login count)."""
    started = time.monotonic()
    back = asyncio.Event()

    def check(*_: object) -> None:
        if all(d.logins > since[d.tid] and d.status is DeviceStatus.ONLINE for d in devices_):
            back.set()

    for device in devices_:
        device.on_status = check
    check()
    async with asyncio.timeout(30):
        await back.wait()
    return time.monotonic() - started


async def test_an_instance_killed_under_load_behind_haproxy(
    fleet: tuple[list[Cloud], str],
) -> None:
    clouds, url = fleet
    through = CloudAddress(clouds[0].data, clouds[0].db, url)  # the vendor API via HAProxy
    world: World = await asyncio.to_thread(make_world, through, devices=DEVICES)
    async with AsyncExitStack() as stack:
        clients = []
        for device in world.devices:
            dc = DeviceClient(device.certificate, url, backoff=fast_backoff())
            dc.on_write("nightMode")(lambda v: v)
            await dc.start(timeout=30)
            stack.push_async_callback(dc.stop)
            clients.append(dc)
        sdk = await stack.enter_async_context(app_sdk(url, world.owner))
        # Spread over the three instances by the balancer.
        db = Database(clouds[0].db)
        stack.push_async_callback(db.close)
        async with db.read() as conn:
            ours = [d.tid for d in world.devices]  # the schema holds other tests' devices too
            spread = dict(
                (
                    await conn.execute(
                        select(devices.c.online_instance, func.count())
                        .where(devices.c.tid.in_(ours), devices.c.online != 0)
                        .group_by(devices.c.online_instance)
                    )
                ).all()
            )
        assert len(spread) == 3, spread

        logins = {d.tid: d.logins for d in clients}

        killed = asyncio.Event()

        async def raise_events(dc: DeviceClient) -> None:
            for n in range(EVENTS):
                if n == EVENTS // 2:
                    await killed.wait()  # the rest while its instance may be gone
                await dc.event("motion", {"n": n})

        load = [asyncio.ensure_future(raise_events(dc)) for dc in clients]
        for n in range(2):  # the owner's writes before the kill
            await sdk.message.write_property(
                world.device.tid, "ProWritable.nightMode", f'{{"setVal": {n}}}'
            )
        victim = clouds[0]
        victim.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.proc.wait)
        killed.set()
        await asyncio.gather(*load)
        moved = [
            d for d in clients if d.logins > logins[d.tid] or d.status is not DeviceStatus.ONLINE
        ]
        took = await online(moved, {d.tid: logins[d.tid] for d in moved}) if moved else 0.0
        assert took < 10, f"{len(moved)} devices took {took:.1f} s to be back"
        for dc in clients:
            await dc.events_sent(timeout=30)
        # Every acknowledged event is kept once: none lost, none doubled.
        async with db.read() as conn:
            counts = dict(
                (
                    await conn.execute(
                        select(device_events.c.tid, func.count())
                        .where(device_events.c.tid.in_(ours))
                        .group_by(device_events.c.tid)
                    )
                ).all()
            )
        assert counts == {d.tid: EVENTS for d in clients}
        # A write after the kill, once the app's link is back: the last acknowledged
        # write is what the device has and the cloud keeps.
        await linked(sdk)
        await sdk.message.write_property(world.device.tid, "ProWritable.nightMode", '{"setVal": 2}')
        value = await sdk.message.read_property(world.device.tid, "ProWritable.nightMode")
        assert value["setVal"] == value["stVal"] == 2
