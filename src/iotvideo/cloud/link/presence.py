"""Which devices are online: instance liveness and the reaping of dead instances' devices.

Each cloud instance registers itself and beats every ``heartbeat_interval`` seconds. A
device's row names the instance holding its session; when an instance stops beating for
three intervals (it crashed or lost the database), any other instance marks its devices
offline and tells their apps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud.db.tables import cloud_instances, devices
from iotvideo.cloud.link.context import LinkContext
from iotvideo.cloud.things import DeviceInfo
from iotvideo.cloud.webhooks import enqueue
from iotvideo.protocol.errors import IVError
from iotvideo.protocol.thingmodel import Change, ThingModel, apply

__all__ = ["register", "run_presence", "unregister"]

log = logging.getLogger("iotvideo.cloud.link")


async def register(ctx: LinkContext) -> None:
    now = ctx.now()
    async with ctx.db.begin() as conn:
        await conn.execute(
            insert(cloud_instances).values(
                instance_id=ctx.hub.instance_id, started_at=now, heartbeat_at=now
            )
        )


async def unregister(ctx: LinkContext) -> None:
    async with ctx.db.begin() as conn:
        await conn.execute(
            delete(cloud_instances).where(cloud_instances.c.instance_id == ctx.hub.instance_id)
        )


async def run_presence(ctx: LinkContext, sessions: set[object]) -> None:
    """Beat, reap dead instances, close idle and expired sessions; until cancelled."""
    interval = ctx.settings.heartbeat_interval
    while True:
        try:
            await _beat_and_reap(ctx, stale_after=3 * interval)
            with contextlib.suppress(IVError):  # the bus is down: iotvideo_bus_up says so
                await ctx.hub.probe()
            await _converge(ctx, sessions)
            ctx.outages.round_done()
        except Exception as exc:  # the database may be down for a moment; keep trying
            ctx.outages.round_failed("presence round", exc)
        _sweep(ctx, sessions)
        await asyncio.sleep(min(interval, ctx.settings.link_idle_timeout / 3))


async def _beat_and_reap(ctx: LinkContext, *, stale_after: float) -> None:
    now = ctx.now()
    async with ctx.db.begin() as conn:
        await conn.execute(
            update(cloud_instances)
            .where(cloud_instances.c.instance_id == ctx.hub.instance_id)
            .values(heartbeat_at=now)
        )
        dead = list(
            await conn.scalars(
                select(cloud_instances.c.instance_id).where(
                    cloud_instances.c.heartbeat_at < now - stale_after
                )
            )
        )
        if not dead:
            return
        orphans = list(
            await conn.scalars(
                select(devices.c.tid).where(
                    devices.c.online_instance.in_(dead), devices.c.online != 0
                )
            )
        )
        await conn.execute(
            update(devices)
            .where(devices.c.online_instance.in_(dead))
            .values(online=0, online_instance="", online_session="")
        )
        for tid in orphans:
            await enqueue(conn, tid, "device.offline", {}, now=now)
        await conn.execute(delete(cloud_instances).where(cloud_instances.c.instance_id.in_(dead)))
    log.warning(
        "instances %s stopped beating; %d of their devices are now offline", dead, len(orphans)
    )
    for tid in orphans:
        await ctx.things.change(
            tid, lambda _i, _m, s: apply(s, Change("ProReadonly", "_online", {"stVal": 0}), now)
        )
        await ctx.hub.push(
            tid, "prop", {"path": "ProReadonly._online", "value": {"stVal": 0, "t": now}}
        )


async def _converge(ctx: LinkContext, sessions: set[object]) -> None:
    """Devices this instance has marked online without a live session here (a logout
    whose database or bus step failed) are marked offline: presence always converges."""
    from iotvideo.cloud.link.device_session import DeviceSession

    live = {s.sid for s in sessions if isinstance(s, DeviceSession) and s.online}
    async with ctx.db.read() as conn:
        marked = list(
            await conn.execute(
                select(devices.c.tid, devices.c.online_session).where(
                    devices.c.online_instance == ctx.hub.instance_id, devices.c.online != 0
                )
            )
        )
    for tid, sid in marked:
        if sid not in live:
            await mark_offline(ctx, tid, sid)
            log.warning("device %s was marked online without a session here; now offline", tid)


async def mark_offline(ctx: LinkContext, tid: str, sid: str) -> bool:
    """Mark ``tid`` offline if session ``sid`` is still the one that marked it online (a
    newer login elsewhere stands); tell the apps. False if another session took over."""
    now = ctx.now()
    ours = False

    async def mark(conn: AsyncConnection) -> None:  # committed with the state below
        nonlocal ours
        result = await conn.execute(
            update(devices)
            .where(devices.c.tid == tid, devices.c.online_session == sid)
            .values(online=0, online_instance="", online_session="")
        )
        ours = bool(result.rowcount)
        if ours:
            await enqueue(conn, tid, "device.offline", {}, now=now)

    def offline(_info: DeviceInfo, _model: ThingModel, state: dict[str, Any]) -> None:
        if ours:
            apply(state, Change("ProReadonly", "_online", {"stVal": 0}), now)

    await ctx.things.change(tid, offline, before=mark)
    if not ours:
        return False
    await ctx.hub.push(
        tid, "prop", {"path": "ProReadonly._online", "value": {"stVal": 0, "t": now}}
    )
    return True


def _sweep(ctx: LinkContext, sessions: set[object]) -> None:
    """Close sessions idle for too long, and those whose access token expired."""
    from iotvideo.cloud.link.session import LinkSession
    from iotvideo.protocol import link
    from iotvideo.protocol.errors import ErrorCode

    limit = time.monotonic() - ctx.settings.link_idle_timeout
    now = ctx.now()
    for session in list(sessions):
        if not isinstance(session, LinkSession) or session.closing:
            continue
        if session.expires_at <= now:
            code = ErrorCode.IVTermErr_msg_calling_check_token_error
            session.spawn(session.close(link.CLOSE_REFUSED, code, "the access token expired"))
        elif session.last_seen < limit:
            code = ErrorCode.IVTermErr_msg_calling_timeout_disconnect
            session.spawn(session.close(link.CLOSE_RETRY, code, "idle for too long"))
