"""Retention on a clock the test controls: what the plan no longer keeps is deleted,
rows and files; a service that ended (refunded) keeps nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import select

from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import cloud_events, cloud_segments
from iotvideo.cloud.retention import purge_expired
from iotvideo.device.cloudrec import CloudRecorder
from iotvideo.device.media import DeviceMedia
from tests.inproc import Clock, inproc_cloud
from tests.link.world import device_client, make_world

DAY = 86_400


async def kept(db: Database) -> tuple[set[str], set[str]]:
    """Devices that still have segments, and that still have events."""
    async with db.read() as conn:
        segments = set(await conn.scalars(select(cloud_segments.c.tid)))
        events = set(await conn.scalars(select(cloud_events.c.tid)))
    return segments, events


async def test_old_recordings_go_and_ended_services_keep_nothing(tmp_path: Path) -> None:
    async with inproc_cloud(tmp_path / "cloud", Clock(), retention_interval=3600) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=2)
        three, thirty = world.devices
        await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=three.tid)
        bought = await world.avendor("CreateStorageService", PkgId="yc1m30d", Tid=thirty.tid)
        for camera in world.devices:
            async with device_client(cloud.url, camera) as device:
                media = DeviceMedia(device, video="testsrc:", audio="none")
                recorder = CloudRecorder(
                    device, media, buffer_dir=tmp_path / camera.tid, segment_seconds=1
                )
                await recorder.start()
                await recorder.event(1)  # with a picture of the stream
                await recorder.wait_uploaded(3)
                await recorder.stop(drain=True)
                await media.close()
        db = Database(cloud.db)
        try:
            both = {three.tid, thirty.tid}
            now = int(time.time())
            assert await purge_expired(db, cloud.data, now=now + 2 * DAY) == 0
            assert await kept(db) == (both, both)
            assert len(list((cloud.data / "events").rglob("*.jpg"))) == 4  # pictures, thumbs
            # The 30-day plan is refunded: its service ends, its video goes at once.
            await world.avendor(
                "RefundStorageService", ServiceId=bought.ServiceId, OrderId=bought.Data[0].OrderId
            )
            await purge_expired(db, cloud.data, now=now + 2 * DAY)
            assert await kept(db) == ({three.tid}, {three.tid})
            assert not list((cloud.data / "vas" / thirty.tid).rglob("*.ts"))
            assert list((cloud.data / "vas" / three.tid).rglob("*.ts"))
            # Four days on, the 3-day plan no longer keeps what was recorded today.
            assert await purge_expired(db, cloud.data, now=now + 4 * DAY) > 0
            assert await kept(db) == (set(), set())
            assert not list((cloud.data / "vas").rglob("*.ts"))
            assert not list((cloud.data / "events").rglob("*.jpg"))
        finally:
            await db.close()
