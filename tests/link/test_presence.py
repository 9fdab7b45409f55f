"""Presence converges: a device marked online with no live session on its instance (its
logout's database or bus step failed) is marked offline by the instance's next sweep."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis
from sqlalchemy import delete, insert, select, update

from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import cloud_instances, devices
from tests.inproc import Clock, inproc_cloud
from tests.link.world import Inbox, app_sdk, device_client, eventually, make_world
from tests.support import start_cloud

REDIS = "redis://127.0.0.1:6379/0"


async def _row(db: Database, tid: str) -> tuple[int, str, str]:
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(devices.c.online, devices.c.online_instance, devices.c.online_session).where(
                    devices.c.tid == tid
                )
            )
        ).one()
    return int(row.online), str(row.online_instance), str(row.online_session)


async def _set_row(db: Database, tid: str, online: int, instance: str, session: str) -> None:
    """Set the device's presence columns as a failed or unfinished step would leave them."""
    async with db.begin() as conn:
        await conn.execute(
            update(devices)
            .where(devices.c.tid == tid)
            .values(online=online, online_instance=instance, online_session=session)
        )


async def test_a_device_left_online_by_a_failed_logout_goes_offline(tmp_path: Path) -> None:
    async with inproc_cloud(tmp_path, Clock()) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = world.device.tid
        db = Database(cloud.db)
        try:
            async with device_client(cloud.url, world.device):
                online, instance, _ = await _row(db, tid)
                assert online == 1 and instance
            # As if the logout's last steps had failed: still marked online, by a session
            # that no longer exists on this instance.
            await _set_row(db, tid, 1, instance, "gone")

            async def offline() -> None:
                assert (await _row(db, tid))[0] == 0

            await eventually(offline)
            async with app_sdk(cloud.url, world.owner) as sdk:
                state = await sdk.message.read_property(tid, "ProReadonly._online")
                assert state["stVal"] == 0
        finally:
            await db.close()


async def test_a_device_left_online_by_an_instance_no_longer_registered_goes_offline(
    tmp_path: Path,
) -> None:
    """An instance reaped while the reaper died before it had marked every device of the
    dead one offline (or a row left by an instance long gone): the devices still marked
    online by an instance that is not registered go offline: their row, and the apps are
    told."""
    async with inproc_cloud(tmp_path, Clock()) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = world.device.tid
        db = Database(cloud.db)
        try:
            async with device_client(cloud.url, world.device):
                assert (await _row(db, tid))[0] == 1

            async def logged_out() -> None:
                assert (await _row(db, tid))[0] == 0

            await eventually(logged_out)
            async with app_sdk(cloud.url, world.owner) as sdk:
                inbox = Inbox(sdk)
                await _set_row(db, tid, 1, "gone0001", "s")  # no such instance is registered
                await inbox.property("ProReadonly._online", stVal=0)

                async def offline() -> None:
                    assert await _row(db, tid) == (0, "", "")
                    state = await sdk.message.read_property(tid, "ProReadonly._online")
                    assert state["stVal"] == 0

                await eventually(offline)
        finally:
            await db.close()


async def test_an_instance_taken_for_dead_marks_its_devices_online_again(
    tmp_path: Path,
) -> None:
    """Another instance reaped this one (its beats did not reach the database for a
    while) and marked its devices offline, though they are still connected here: at its
    next beat it registers again and marks them online again, and the apps hear it."""
    async with inproc_cloud(tmp_path, Clock()) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = world.device.tid
        db = Database(cloud.db)
        try:
            async with (
                device_client(cloud.url, world.device),
                app_sdk(cloud.url, world.owner) as sdk,
            ):
                online, instance, session = await _row(db, tid)
                assert online == 1
                inbox = Inbox(sdk)
                async with db.begin() as conn:  # what the reaper does
                    await conn.execute(
                        delete(cloud_instances).where(cloud_instances.c.instance_id == instance)
                    )
                    await conn.execute(
                        update(devices)
                        .where(devices.c.tid == tid)
                        .values(online=0, online_instance="", online_session="")
                    )
                await inbox.property("ProReadonly._online", stVal=1)

                async def registered() -> None:
                    assert await _row(db, tid) == (1, instance, session)
                    async with db.read() as conn:
                        assert await conn.scalar(
                            select(cloud_instances.c.instance_id).where(
                                cloud_instances.c.instance_id == instance
                            )
                        )

                await eventually(registered)
        finally:
            await db.close()


async def test_an_instance_alive_on_the_bus_is_not_reaped_for_late_beats(tmp_path: Path) -> None:
    """An instance whose beats are late (waiting for a database connection under load)
    but that holds its bus subscription is alive: its devices are not marked offline.
    Once its subscription is gone too (the process died), they are."""
    cloud = await asyncio.to_thread(start_cloud, tmp_path / "data", bus=REDIS)
    redis = aioredis.Redis.from_url(REDIS)
    try:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = world.device.tid
        ghost = "ghost" + world.device.tid[:8].lower()  # another instance, made up here
        pubsub = redis.pubsub()
        await pubsub.subscribe(f"iv:inst:{ghost}")  # alive: as its process would be
        db = Database(cloud.db)
        try:
            async with db.begin() as conn:
                await conn.execute(
                    insert(cloud_instances).values(
                        instance_id=ghost,
                        started_at=0,
                        heartbeat_at=0,  # long stale
                    )
                )
                await conn.execute(
                    update(devices)
                    .where(devices.c.tid == tid)
                    .values(online=1, online_instance=ghost, online_session="s")
                )
            async with asyncio.timeout(20):  # the cloud asks the bus whether it lives
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        break
            assert (await _row(db, tid))[0] == 1
            await pubsub.aclose()  # its process is gone
            await asyncio.to_thread(cloud.wait_for_log, f"instances \\['{ghost}'\\] stopped")
            assert (await _row(db, tid))[0] == 0
        finally:
            await db.close()
    finally:
        await redis.aclose()
        cloud.stop()
