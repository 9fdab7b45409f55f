"""Which devices are online: instance liveness and the reaping of dead instances' devices.

Each cloud instance registers itself and beats every ``heartbeat_interval`` seconds. A
device's row names the instance holding its session; when an instance stops beating for
three intervals (it crashed or lost the database), any other instance marks its devices
offline and tells their apps. Not while the bus says the instance is alive (it holds its
subscription: a busy instance whose beats wait for a database connection is not dead),
and only after the reaping instance has itself beaten without a gap for that long: after
a database outage every instance missed its beats, and none may take the others for
dead. An instance that finds itself reaped anyway registers again and marks its devices
online again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud.db import among
from iotvideo.cloud.db.tables import cloud_instances, devices
from iotvideo.cloud.link.context import LinkContext
from iotvideo.cloud.things import DeviceInfo
from iotvideo.cloud.webhooks import Notice, enqueue_many
from iotvideo.protocol.errors import IVError
from iotvideo.protocol.thingmodel import Change, ThingModel, apply

__all__ = ["PresenceMark", "mark_offline", "register", "run_presence", "unregister"]

log = logging.getLogger("iotvideo.cloud.link")

#: Devices marked online (or offline) at once, one group commit, when an instance comes
#: back (or is gone).
COME_BACK_AT_ONCE = 200


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
    stale_after = 3 * interval
    beating_since: float | None = None  # monotonic: the start of this run of beats
    last_beat = 0.0
    taken_for_dead = False
    while True:
        try:
            started = time.monotonic()
            if beating_since is None or started - last_beat > 2 * interval:
                beating_since = started  # a gap: others may have missed beats too
            may_reap = started - beating_since >= stale_after
            if not await _beat_and_reap(ctx, stale_after=stale_after, may_reap=may_reap):
                await register(ctx)
                taken_for_dead = True
            last_beat = started
            if taken_for_dead:  # until every device is marked again (a round may fail)
                await _come_back(ctx, sessions)
                taken_for_dead = False
            with contextlib.suppress(IVError):  # the bus is down: iotvideo_bus_up says so
                await ctx.hub.probe()
            await _converge(ctx, sessions)
            ctx.outages.round_done()
        except Exception as exc:  # the database may be down for a moment; keep trying
            ctx.outages.round_failed("presence round", exc)
        _sweep(ctx, sessions)
        await asyncio.sleep(min(interval, ctx.settings.link_idle_timeout / 3))


async def _beat_and_reap(ctx: LinkContext, *, stale_after: float, may_reap: bool) -> bool:
    """Beat; forget instances that stopped beating (when ``may_reap``), then mark offline
    every device still marked online by an instance that is gone. False when this
    instance's own row was gone (another instance took it for dead)."""
    now = ctx.now()
    async with ctx.db.begin() as conn:
        beat = await conn.execute(
            update(cloud_instances)
            .where(cloud_instances.c.instance_id == ctx.hub.instance_id)
            .values(heartbeat_at=now)
        )
        if beat.rowcount == 0:
            return False
        if not may_reap:
            return True
        stale = list(
            await conn.scalars(
                select(cloud_instances.c.instance_id).where(
                    cloud_instances.c.heartbeat_at < now - stale_after
                )
            )
        )
    dead = [i for i in stale if await ctx.hub.instance_alive(i) is not True]
    if dead:
        async with ctx.db.begin() as conn:
            dead = list(  # still stale: one may have beaten meanwhile
                await conn.scalars(
                    delete(cloud_instances)
                    .where(
                        cloud_instances.c.instance_id.in_(dead),
                        cloud_instances.c.heartbeat_at < now - stale_after,
                    )
                    .returning(cloud_instances.c.instance_id)
                )
            )
    released = await _release_orphans(ctx)
    if dead:
        log.warning(
            "instances %s stopped beating; %d devices left online by gone instances are "
            "now offline",
            dead,
            released,
        )
    return True


async def _release_orphans(ctx: LinkContext) -> int:
    """Mark offline the devices still marked online by an instance that is no longer
    registered (just reaped, or reaped by an instance that died before it finished):
    each only if the session that marked it still holds it (one that logged in again
    elsewhere meanwhile stays online), its row and its state in one transaction, the
    apps told. Many at a time; the number marked offline."""
    async with ctx.db.read() as conn:
        orphans = list(
            await conn.execute(
                select(devices.c.tid, devices.c.online_session).where(
                    devices.c.online != 0,
                    devices.c.online_instance.not_in(select(cloud_instances.c.instance_id)),
                )
            )
        )
    released = 0
    for start in range(0, len(orphans), COME_BACK_AT_ONCE):
        wave = orphans[start : start + COME_BACK_AT_ONCE]
        results = await asyncio.gather(
            *(mark_offline(ctx, tid, sid) for tid, sid in wave), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result  # the round failed; the next one takes up what is left
        released += sum(1 for result in results if result is True)
    return released


async def _come_back(ctx: LinkContext, sessions: set[object]) -> None:
    """This instance was taken for dead and its devices marked offline while they were
    connected here: mark each of them online again (as at a login: their state, the
    vendor's webhook and the apps are told), many at a time."""
    from iotvideo.cloud.link.device_session import DeviceSession

    live = [s for s in sessions if isinstance(s, DeviceSession) and s.online]
    log.warning(
        "this instance was taken for dead; %d of its devices are marked online again",
        len(live),
    )
    for start in range(0, len(live), COME_BACK_AT_ONCE):
        wave = live[start : start + COME_BACK_AT_ONCE]
        await asyncio.gather(*(session.mark_online_again() for session in wave))


async def _converge(ctx: LinkContext, sessions: set[object]) -> None:
    """Devices this instance has marked online without a live session here (a logout
    whose database or bus step failed) are marked offline: presence always converges."""
    from iotvideo.cloud.link.device_session import DeviceSession

    async with ctx.db.read() as conn:
        marked = list(
            await conn.execute(
                select(devices.c.tid, devices.c.online_session).where(
                    devices.c.online_instance == ctx.hub.instance_id, devices.c.online != 0
                )
            )
        )
    # After the read: a session is in this set before its login marks the row, and until
    # its logout has marked it offline (a login or logout during the read is not taken
    # for a ghost); mark_offline only marks a row its session still holds.
    live = {s.sid for s in sessions if isinstance(s, DeviceSession)}
    for tid, sid in marked:
        if sid not in live and await mark_offline(ctx, tid, sid):
            log.warning("device %s was marked online without a session here; now offline", tid)


@dataclass
class PresenceMark:
    """A device's row marked online by a login or offline at its session's end, written
    in the transaction of the device's state change (``Things.change(before=...)``). The
    marks of a batch are written together: four statements however many (a login storm
    brings hundreds at once)."""

    tid: str
    #: The session marking the device online, or whose end marks it offline.
    session: str
    online: bool
    now: int
    #: Online: the instance holding the session; the firmware version the device reported.
    instance: str = ""
    version: str = ""
    #: Online: only if the row is offline (not when another session holds it now).
    only_if_offline: bool = False
    #: Set by the write: whether the row changed (offline: False when another session
    #: took the device over since).
    marked: bool = False

    @classmethod
    async def write_all(cls, conn: AsyncConnection, marks: Sequence[PresenceMark]) -> None:
        """Write ``marks`` (each device's in the order they came) and queue the vendor's
        ``device.online``/``device.offline`` notices of those that changed the row."""
        query = (
            select(devices.c.tid, devices.c.online, devices.c.online_session)
            .where(among(conn, devices.c.tid, {m.tid for m in marks}))
            .order_by(devices.c.tid)  # locked in device order: batches never deadlock
        )
        if conn.dialect.name != "sqlite":
            # FOR NO KEY UPDATE, as an UPDATE locks: rows referring to the device (its
            # events, its state) may still be written meanwhile.
            query = query.with_for_update(key_share=True)
        rows = {tid: (online, session) for tid, online, session in await conn.execute(query)}
        final: dict[str, dict[str, Any]] = {}
        notices: list[Notice] = []
        for mark in marks:
            if mark.tid not in rows:
                continue  # deleted meanwhile
            online, session = rows[mark.tid]
            if mark.online:
                mark.marked = not mark.only_if_offline or online == 0
            else:
                mark.marked = session == mark.session
            if not mark.marked:
                continue
            rows[mark.tid] = (1, mark.session) if mark.online else (0, "")
            row = final.setdefault(
                mark.tid, {"b_tid": mark.tid, "b_first": None, "b_seen": None, "b_sw": ""}
            )
            row["b_online"] = int(mark.online)
            row["b_instance"] = mark.instance if mark.online else ""
            row["b_session"] = mark.session if mark.online else ""
            if mark.online:
                row["b_seen"] = mark.now
                row["b_first"] = row["b_first"] or mark.now  # the activation, if it is one
                row["b_sw"] = mark.version or row["b_sw"]
            kind = "device.online" if mark.online else "device.offline"
            notices.append((mark.tid, kind, {}, mark.now))
        if final:
            await conn.execute(_MARK, list(final.values()))
        await enqueue_many(conn, notices)


_seen = bindparam("b_seen", type_=BigInteger)
_first = bindparam("b_first", type_=BigInteger)
_sw = bindparam("b_sw", type_=String)
#: One device's row as its marks leave it (``b_first``/``b_seen``: when it first/last came
#: online in the batch, or None).
_MARK = (
    update(devices)
    .where(devices.c.tid == bindparam("b_tid"))
    .values(
        online=bindparam("b_online"),
        online_instance=bindparam("b_instance"),
        online_session=bindparam("b_session"),
        last_online_time=func.coalesce(_seen, devices.c.last_online_time),
        active_time=case(
            (and_(devices.c.active_time == 0, _first.is_not(None)), _first),
            else_=devices.c.active_time,
        ),
        ota_version=case((_sw != "", _sw), else_=devices.c.ota_version),
    )
)


async def mark_offline(ctx: LinkContext, tid: str, sid: str) -> bool:
    """Mark ``tid`` offline if session ``sid`` is still the one that marked it online (a
    newer login elsewhere stands); tell the apps. False if another session took over."""
    now = ctx.now()
    mark = PresenceMark(tid, sid, online=False, now=now)

    def offline(_info: DeviceInfo, _model: ThingModel, state: dict[str, Any]) -> None:
        if mark.marked:
            apply(state, Change("ProReadonly", "_online", {"stVal": 0}), now)

    await ctx.things.change(tid, offline, before=mark)
    if not mark.marked:
        return False
    await ctx.hub.push(
        tid, "prop", {"path": "ProReadonly._online", "value": {"stVal": 0, "t": now}}
    )
    return True


def _sweep(ctx: LinkContext, sessions: set[object]) -> None:
    """Ping silent connections (WebSocket keepalive), close sessions idle for too long,
    and those whose access token expired."""
    from iotvideo.cloud.link.session import LinkSession
    from iotvideo.protocol import link
    from iotvideo.protocol.errors import ErrorCode

    limit = time.monotonic() - ctx.settings.link_idle_timeout
    now = ctx.now()
    loop_now = asyncio.get_running_loop().time()
    for session in list(sessions):
        if not isinstance(session, LinkSession) or session.closing:
            continue
        session.ws.keepalive(loop_now)
        if session.expires_at <= now:
            code = ErrorCode.IVTermErr_msg_calling_check_token_error
            session.spawn(session.close(link.CLOSE_REFUSED, code, "the access token expired"))
        elif session.last_seen < limit:
            code = ErrorCode.IVTermErr_msg_calling_timeout_disconnect
            session.spawn(session.close(link.CLOSE_RETRY, code, "idle for too long"))
