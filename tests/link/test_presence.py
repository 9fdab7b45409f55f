"""Presence converges: a device marked online with no live session on its instance (its
logout's database or bus step failed) is marked offline by the instance's next sweep."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select, update

from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import devices
from tests.inproc import Clock, inproc_cloud
from tests.link.world import app_sdk, device_client, eventually, make_world


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
            async with db.begin() as conn:
                await conn.execute(
                    update(devices)
                    .where(devices.c.tid == tid)
                    .values(online=1, online_instance=instance, online_session="gone")
                )

            async def offline() -> None:
                assert (await _row(db, tid))[0] == 0

            await eventually(offline)
            async with app_sdk(cloud.url, world.owner) as sdk:
                state = await sdk.message.read_property(tid, "ProReadonly._online")
                assert state["stVal"] == 0
        finally:
            await db.close()
