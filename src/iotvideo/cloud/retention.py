"""Cloud-storage retention: recordings and events older than the plan keeps are deleted.

A channel keeps what was recorded in the last ``storage days`` of its current order
(``playbackStartTime`` on): older segments and events, and everything of a channel whose
service has expired (status 3), are removed, rows and files. Every cloud instance runs
it; deleting twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import delete, select, union

from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import cloud_events, cloud_segments
from iotvideo.cloud.outages import Outages
from iotvideo.cloud.storage import ServiceStatus, channel_view

__all__ = ["delete_device_files", "purge_expired", "run_retention"]

log = logging.getLogger("iotvideo.cloud.retention")


async def purge_expired(db: Database, data: Path, *, now: int) -> int:
    """Delete what no plan keeps any more; how many segments and events went."""
    removed = 0
    async with db.read() as conn:
        channels = list(
            await conn.execute(
                union(
                    select(cloud_segments.c.tid, cloud_segments.c.chn_num),
                    select(cloud_events.c.tid, cloud_events.c.chn_num),
                )
            )
        )
    for tid, chn in channels:
        async with db.begin() as conn:
            view = await channel_view(conn, tid, chn, now)
            keep_from = view.playback_start if view.status is not ServiceStatus.EXPIRED else None
            seg_where = [cloud_segments.c.tid == tid, cloud_segments.c.chn_num == chn]
            evt_where = [cloud_events.c.tid == tid, cloud_events.c.chn_num == chn]
            if keep_from is not None:
                seg_where.append(cloud_segments.c.end_ms <= keep_from * 1000)
                evt_where.append(cloud_events.c.start_time < keep_from)
            segments = list(await conn.scalars(select(cloud_segments.c.path).where(*seg_where)))
            events = list(
                await conn.execute(
                    select(cloud_events.c.picture, cloud_events.c.thumb).where(*evt_where)
                )
            )
            await conn.execute(delete(cloud_segments).where(*seg_where))
            await conn.execute(delete(cloud_events).where(*evt_where))
        files = [*segments, *(f for e in events for f in (e.picture, e.thumb) if f)]
        await asyncio.to_thread(_unlink, [data / f for f in files])
        removed += len(segments) + len(events)
    return removed


async def delete_device_files(data: Path, tid: str) -> None:
    """Remove a deleted device's recordings and event pictures (its rows went with it)."""
    for folder in (data / "vas" / tid, data / "events" / tid):
        await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


async def run_retention(
    db: Database, data: Path, *, clock: Callable[[], float], interval: float, outages: Outages
) -> None:
    """Purge now and every ``interval`` seconds, until cancelled."""
    while True:
        try:
            removed = await purge_expired(db, data, now=int(clock()))
            if removed:
                log.info("retention removed %d recordings and events", removed)
        except Exception as exc:  # a failed round must not end retention for good
            outages.round_failed("retention", exc)
        await asyncio.sleep(interval)
