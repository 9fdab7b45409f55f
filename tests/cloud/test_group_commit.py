"""Group commit of device state: changes that arrive together share one transaction; a
refused one fails alone; one that breaks a device's state fails that device's changes
in the batch and stores none of them; callers hear only after the commit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import devices, webhook_outbox
from iotvideo.cloud.keys import set_events_url
from iotvideo.cloud.link.presence import PresenceMark
from iotvideo.cloud.things import DeviceInfo, Things
from iotvideo.protocol.errors import IVError
from iotvideo.protocol.thingmodel import ThingModel, apply
from tests.inproc import Clock, inproc_cloud
from tests.link.world import make_world

TEMP = "ProReadonly.temperature"


def report(value: float) -> Any:
    def fn(_info: DeviceInfo, model: ThingModel, state: dict[str, Any]) -> Any:
        return apply(state, model.device_report(TEMP, value), int(time.time()))

    return fn


def broken(_info: DeviceInfo, _model: ThingModel, state: dict[str, Any]) -> Any:
    state["ProReadonly"]["temperature"]["stVal"] = "half written"
    raise RuntimeError("a bug in a change")


async def test_changes_arriving_together_share_a_commit(tmp_path: Path) -> None:
    async with inproc_cloud(tmp_path, Clock()) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=2)
        a, b = world.devices[0].tid, world.devices[1].tid
        db = Database(cloud.db)
        things = Things(db, time.time)
        try:
            results = await asyncio.gather(
                things.change(a, report(20.0)),
                things.change(a, report(1e9)),  # out of range: refused alone
                things.change(b, report(21.0)),
                things.change(b, broken),
                things.change("NOSUCHDEVICE", report(1.0)),
                return_exceptions=True,
            )
            assert (things.batches, things.batched) == (1, 5)
            assert results[0]["stVal"] == 20.0
            assert isinstance(results[1], IVError) and results[1].code == 20143
            assert isinstance(results[2], RuntimeError) and isinstance(results[3], RuntimeError)
            assert isinstance(results[4], IVError) and results[4].code == 8002
            _, _, state_a = await things.snapshot(a)
            assert state_a["ProReadonly"]["temperature"]["stVal"] == 20.0
            _, _, state_b = await things.snapshot(b)
            assert state_b["ProReadonly"]["temperature"]["stVal"] not in (21.0, "half written")
            # One at a time, each is its own transaction.
            assert (await things.change(b, report(22.0)))["stVal"] == 22.0
            assert things.batches == 2
            # Other rows go in the same transaction (a login marks the device online);
            # when they fail, the batch stores nothing.
            marked: list[int] = []

            async def mark(conn: AsyncConnection) -> None:
                marked.append(await conn.scalar(select(func.count()).select_from(devices)))

            async def fail(_conn: AsyncConnection) -> None:
                raise RuntimeError("the database went away")

            assert (await things.change(a, report(23.0), before=mark))["stVal"] == 23.0
            assert marked == [len(world.devices)]
            failed = await asyncio.gather(
                things.change(a, report(24.0)),
                things.change(b, report(25.0), before=fail),
                return_exceptions=True,
            )
            assert all(isinstance(f, RuntimeError) for f in failed)
            _, _, state_a = await things.snapshot(a)
            assert state_a["ProReadonly"]["temperature"]["stVal"] == 23.0
        finally:
            await db.close()


def no_change(_info: DeviceInfo, _model: ThingModel, _state: dict[str, Any]) -> None:
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str | None:
    """The database of each backend (None: the cloud's own SQLite file)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_schema_url"))
    return None


async def test_presence_marks_of_a_batch_apply_in_order(tmp_path: Path, db_url: str | None) -> None:
    """A batch's logins and logouts are written together, each device's in the order they
    came: a logout marks the device offline only if its session still holds it, a login
    that only takes an offline device leaves a held one alone; the vendor hears of each
    change once."""
    async with inproc_cloud(tmp_path, Clock(), db=db_url) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=3)
        a, b, c = (d.tid for d in world.devices)
        db = Database(cloud.db)
        things = Things(db, time.time)
        await set_events_url(db, world.vendor_id, "http://127.0.0.1:9/hooks")
        marks = [
            PresenceMark(a, "s1", online=True, now=100, instance="i1", version="1.2.3"),
            PresenceMark(a, "s1", online=False, now=101),
            PresenceMark(a, "s2", online=True, now=102, instance="i2"),
            PresenceMark(b, "nobody", online=False, now=103),  # not its session: stays
            PresenceMark(c, "s3", online=True, now=104, instance="i1"),
            PresenceMark(c, "s4", online=True, now=105, instance="i2", only_if_offline=True),
            PresenceMark(c, "s1", online=False, now=106),  # an older session ending late
        ]
        try:
            await asyncio.gather(*(things.change(m.tid, no_change, before=m) for m in marks))
            assert (things.batches, things.batched) == (1, len(marks))
            assert [m.marked for m in marks] == [True, True, True, False, True, False, False]
            async with db.read() as conn:
                rows = {
                    r.tid: r
                    for r in await conn.execute(select(devices).where(devices.c.tid.in_([a, b, c])))
                }
                notices = [
                    (r.payload["tid"], r.kind)
                    for r in await conn.execute(
                        select(webhook_outbox).order_by(webhook_outbox.c.id)
                    )
                    if r.payload["tid"] in (a, b, c)
                ]
            assert (rows[a].online, rows[a].online_session, rows[a].online_instance) == (
                1,
                "s2",
                "i2",
            )
            assert (rows[a].last_online_time, rows[a].active_time) == (102, 100)
            assert rows[a].ota_version == "1.2.3"  # the login without a version kept it
            assert (rows[b].online, rows[b].last_online_time) == (0, 0)
            assert (rows[c].online, rows[c].online_session, rows[c].last_online_time) == (
                1,
                "s3",
                104,
            )
            # Each device's in order (devices are written in their id order).
            assert notices == sorted(
                [
                    (a, "device.online"),
                    (a, "device.offline"),
                    (a, "device.online"),
                    (c, "device.online"),
                ],
                key=lambda notice: notice[0],
            )
        finally:
            await db.close()


@pytest.mark.postgres
async def test_batches_of_every_size_share_their_statements(
    tmp_path: Path, pg_schema_url: str
) -> None:
    """A batch's statements (its logins' too) are the same SQL text whatever its size: each
    text is prepared and kept on every pooled connection, so one per size grew the cloud
    through a soak."""
    async with inproc_cloud(tmp_path, Clock(), db=pg_schema_url) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=12)
        tids = [d.tid for d in world.devices]
        db = Database(pg_schema_url, pool_size=1)  # every batch on the same connection
        things = Things(db, time.time)

        async def batches(sizes: range) -> int:
            """Run a batch of each size; then the statements the connection keeps."""
            for size in sizes:
                results = await asyncio.gather(
                    *(
                        things.change(
                            tid,
                            report(float(size)),
                            before=PresenceMark(tid, f"s{size}", online=True, now=size),
                        )
                        for tid in tids[:size]
                    )
                )
                assert [r["stVal"] for r in results] == [float(size)] * size
            async with db.read() as conn:
                kept = await conn.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
            assert kept is not None
            return int(kept)

        try:
            after_small = await batches(range(1, 4))
            assert await batches(range(4, len(tids) + 1)) == after_small
            assert things.batches == len(tids)
        finally:
            await db.close()
