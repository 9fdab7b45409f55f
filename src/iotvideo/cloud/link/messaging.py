"""Thing-model operations on a device, for app sessions and the vendor API alike.

Reads come from the cloud's copy of the state, except a ProReadonly object of an online
device, which is asked of the device itself (and falls back to the copy if it does not
answer). Writes of ProWritable are stored first, then delivered; a write to an offline
device is delivered when it logs in again. Actions and passthrough data need the device
online (8000 otherwise).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from iotvideo.cloud.db import among
from iotvideo.cloud.db.tables import device_events
from iotvideo.cloud.link.hub import Hub
from iotvideo.cloud.outages import database_unavailable
from iotvideo.cloud.things import DeviceInfo, Things
from iotvideo.cloud.webhooks import enqueue
from iotvideo.protocol import link
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.thingmodel import Change, ThingModel, apply, parse_path, read

__all__ = ["Messaging", "WriteResult"]

log = logging.getLogger("iotvideo.cloud.link")

#: A ProReadonly read waits this long for the device before answering from the cloud's copy.
LIVE_READ_TIMEOUT = 2.0
#: Events kept per device for apps that were offline (event.since), and for how long.
KEPT_EVENTS = 1000
KEPT_SECONDS = 7 * 86_400
#: Devices whose writes are handed over again at once after a bus outage.
REDELIVER_AT_ONCE = 16


class WriteResult(dict[str, Any]):
    """``{"value": <object after the write>, "delivered": <reached the device>}``."""


class Messaging:
    def __init__(self, things: Things, hub: Hub, *, device_timeout: float) -> None:
        self.things = things
        self.hub = hub
        self.device_timeout = device_timeout
        #: Writes that finish even when the writer's session goes away.
        self._carried: set[asyncio.Future[WriteResult]] = set()
        #: Devices whose ProWritable values are to be handed over again (reconcile).
        self._unsettled: set[str] = set()
        self._settling: asyncio.Task[None] | None = None

    # Reads

    async def read(self, tid: str, path: str, *, online_hint: DeviceInfo | None = None) -> Any:
        parts = parse_path(path)
        if len(parts) >= 2 and parts[0] == "ProReadonly" and not parts[1].startswith("_"):
            live = await self._read_live(tid, parts)
            if live is not None:
                return live
        _, _, state = await self.things.snapshot(tid)
        return read(state, path)

    async def _read_live(self, tid: str, parts: tuple[str, ...]) -> Any:
        """Ask the device for a ProReadonly object; None if it is offline or silent."""
        if len(parts) > 3 or (len(parts) == 3 and parts[2] not in ("stVal", "t")):
            raise IVError.of(
                ErrorCode.IVTermErr_msg_gdm_handle_leaf_path_error, f"nothing at {'.'.join(parts)}"
            )
        try:
            outcome = await self.hub.ask(
                tid,
                "prop.read",
                {"path": ".".join(parts[:2])},
                min(self.device_timeout, LIVE_READ_TIMEOUT),
            )
        except IVError:
            return None
        if outcome.code != 0 or "value" not in outcome.data:
            return None
        obj = {"stVal": outcome.data["value"], "t": outcome.data.get("t", self.things.now())}
        return obj if len(parts) == 2 else obj[parts[2]]

    # Writes

    async def write(
        self, tid: str, path: str, value_json: str, *, deliver: bool = True
    ) -> WriteResult:
        """write_property: store, then deliver a ProWritable to the device.

        Once called, the write runs to its end even if the caller is cancelled (a writer
        whose link closes cancels its request): a stored ``setVal`` is always handed to the
        device, and the device's answer recorded, so the cloud never keeps a desired value
        that nothing is delivering. Shutting the cloud down stops it; the device then gets
        the value at its next login."""
        work = asyncio.ensure_future(self._write(tid, path, value_json, deliver))
        self._carried.add(work)
        work.add_done_callback(self._forget)
        return await asyncio.shield(work)

    async def _write(self, tid: str, path: str, value_json: str, deliver: bool) -> WriteResult:
        now = self.things.now()

        def stage(
            info: DeviceInfo, model: ThingModel, state: dict[str, Any]
        ) -> tuple[Change, Any, Any]:
            change = model.app_write(path, value_json)
            before = copy.deepcopy(state.get(change.section, {}).get(change.name))
            return change, apply(state, change, now), before

        change, obj, before = await self.things.change(tid, stage)
        await self.hub.push(tid, "prop", {"path": change.path, "value": obj})
        if change.section != "ProWritable":
            return WriteResult(value=obj, delivered=True)
        if not deliver:
            return WriteResult(value=obj, delivered=False)
        return await self._deliver(tid, change, obj, before)

    def _forget(self, work: asyncio.Future[WriteResult]) -> None:
        self._carried.discard(work)
        if not work.cancelled():
            work.exception()  # a refusal nobody waits for any more is not an error

    async def _deliver(self, tid: str, change: Change, obj: Any, before: Any) -> WriteResult:
        """Hand a stored setVal to the device; record what it applied, or undo a refusal."""
        try:
            outcome = await self.hub.ask(
                tid,
                "prop.write",
                {"path": change.path, "value": obj["setVal"]},
                self.device_timeout,
            )
        except IVError as exc:
            if exc.code == ErrorCode.IVASrvErr_dst_offline:
                return WriteResult(value=obj, delivered=False)  # delivered at its next login
            raise
        if outcome.code != 0:
            await self._restore(tid, change, before, ours=obj["setVal"])
            outcome.raise_for_code()
        applied = outcome.data.get("value", obj["setVal"])
        try:
            recorded = await self.report(tid, change.path, applied, push=True)
        except Exception as exc:
            if isinstance(exc, IVError) or database_unavailable(exc):
                # The device applied it but the database (or the bus) is away: recorded
                # once they are back, by asking the device again.
                self.reconcile(tid)
            raise
        return WriteResult(value=recorded, delivered=True)

    async def close(self) -> None:
        """Stop writing and handing values over again (the next login of each device
        hands it every value it has not confirmed)."""
        pending: list[asyncio.Future[Any]] = [*self._carried]
        if self._settling is not None:
            pending.append(self._settling)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def reconcile(self, tid: str) -> None:
        """Hand the device again, in the background, each ProWritable whose ``setVal`` it
        has not confirmed, and record what it applied; tried again (backing off to 10 s)
        while the database or the bus is away. For what an outage left half done: a write
        stored while the bus was away finds no session, and a value the device applied
        while the database was away is not recorded."""
        self._unsettled.add(tid)
        if self._settling is None or self._settling.done():
            self._settling = asyncio.ensure_future(self._settle())

    async def _settle(self) -> None:
        wait = 0.0
        while self._unsettled:
            await asyncio.sleep(wait)
            tids = sorted(self._unsettled)[:REDELIVER_AT_ONCE]
            self._unsettled.difference_update(tids)
            done = await asyncio.gather(*(self.redeliver(tid) for tid in tids))
            failed = [tid for tid, ok in zip(tids, done, strict=True) if not ok]
            self._unsettled.update(failed)
            wait = min(10.0, max(0.5, wait * 2)) if failed else 0.0

    async def redeliver(self, tid: str) -> bool:
        """Hand the device each ProWritable it has not confirmed (``setVal`` and
        ``stVal`` differ) and record what it applied. False when the database or the
        bus could not be reached (try again); an offline device gets the values at its
        next login."""
        try:
            _, _, state = await self.things.snapshot(tid)
            for name, obj in dict(state.get("ProWritable", {})).items():
                if not isinstance(obj, dict) or "setVal" not in obj:
                    continue
                if obj.get("stVal") == obj["setVal"]:
                    continue
                path = f"ProWritable.{name}"
                outcome = await self.hub.ask(
                    tid, "prop.write", {"path": path, "value": obj["setVal"]},
                    self.device_timeout,
                )  # fmt: skip
                if outcome.code == 0:
                    await self.report(tid, path, outcome.data.get("value", obj["setVal"]))
        except IVError as exc:
            if exc.code == ErrorCode.IVASrvErr_dst_offline:
                return True  # its next login hands the values over
            log.info("device %s: writes not handed over again yet: %s", tid, exc)
            return False
        except Exception as exc:
            if database_unavailable(exc):
                return False
            log.exception("device %s: handing its writes over again failed", tid)
        return True

    async def _restore(self, tid: str, change: Change, before: Any, *, ours: Any) -> None:
        """Undo a stored setVal the device refused, unless another write landed since
        (the stored setVal is no longer ``ours``): that one stands."""

        def undo(_info: DeviceInfo, _model: ThingModel, state: dict[str, Any]) -> bool:
            current = state.get(change.section, {}).get(change.name)
            if not isinstance(current, dict) or current.get("setVal") != ours:
                return False
            if before is None:
                state.get(change.section, {}).pop(change.name, None)
            else:
                state.setdefault(change.section, {})[change.name] = before
            return True

        undone = await self.things.change(tid, undo)
        if undone and before is not None:
            await self.hub.push(tid, "prop", {"path": change.path, "value": before})

    async def report(self, tid: str, path: str, value: Any, *, push: bool = True) -> Any:
        """A state value (stVal) from the device: validate, store, tell the apps."""
        now = self.things.now()

        def store(_info: DeviceInfo, model: ThingModel, state: dict[str, Any]) -> tuple[str, Any]:
            change = model.device_report(path, value)
            return change.path, apply(state, change, now)

        where, obj = await self.things.change(tid, store)
        if push:
            await self.hub.push(tid, "prop", {"path": where, "value": obj})
        return obj

    async def event(self, tid: str, path: str, value: Any, *, event_id: str | None = None) -> bool:
        """A device's event: store, keep for offline apps, push. ``event_id`` (the
        device's own) makes a repeat harmless: False when this one was seen already."""
        now = self.things.now()

        def store(_info: DeviceInfo, model: ThingModel, state: dict[str, Any]) -> Change:
            change = model.device_event(path, value)
            apply(state, change, now)
            return change

        change = await self.things.change(tid, store)
        value = change.value("stVal")
        kept = await self._keep_event(tid, change.name, value, now, event_id)
        if kept is None:
            # Sent again by a device that missed our acknowledgement: its first push may
            # have been lost (the instance died before it, or the bus was away), and this
            # repeat may come long after. Renumbered, it is pushed with a new seq, inside
            # the catch-up window of every app that missed it (apps deliver an id once).
            kept = await self._renumber_event(tid, event_id)
            if kept is not None:
                await self.hub.push(tid, "event", kept)
            return False
        await self.hub.push(tid, "event", kept)
        return True

    async def _renumber_event(self, tid: str, event_id: str | None) -> dict[str, Any] | None:
        """Give a kept event the next seq (a copy stored, the old row removed); its push.
        None when it has aged out since."""
        moved = device_events.c
        async with self.things.db.begin() as conn:
            # Its id off the old row first (the copy takes it), which also locks the row
            # against another repeat renumbering it at the same time.
            old = (
                await conn.execute(
                    update(device_events)
                    .where(moved.tid == tid, moved.event_id == event_id)
                    .values(event_id=None)
                    .returning(moved.seq, moved.topic, moved.value, moved.t)
                )
            ).first()
            if old is None:
                renumbered = None  # another repeat did it meanwhile: push what it made
            else:
                row = {"tid": tid, "event_id": event_id, "topic": old.topic, "value": old.value}
                row["t"] = old._mapping["t"]  # a Row's .t is its tuple view
                key = (await conn.execute(insert(device_events).values(**row))).inserted_primary_key
                assert key is not None  # an INSERT of one row has one
                await conn.execute(delete(device_events).where(moved.seq == old.seq))
                renumbered = _push_of({**row, "seq": int(key[0])})
        return renumbered if renumbered is not None else await self._kept_event(tid, event_id)

    async def _kept_event(self, tid: str, event_id: str | None) -> dict[str, Any] | None:
        """The push of an event already kept (None when it has aged out since)."""
        async with self.things.db.read() as conn:
            row = (
                await conn.execute(
                    select(device_events).where(
                        device_events.c.tid == tid, device_events.c.event_id == event_id
                    )
                )
            ).first()
        return None if row is None else _push_of(row._mapping)

    async def _keep_event(
        self, tid: str, topic: str, value: Any, now: int, event_id: str | None
    ) -> dict[str, Any] | None:
        """Keep the event for apps that are offline now (``event.since``); the newest
        KEPT_EVENTS per device stay. Its push, with its ``seq`` (the cursor apps resume
        from), or None when the device sent this ``event_id`` before."""
        row = {"tid": tid, "event_id": event_id, "topic": topic, "value": value, "t": now}
        try:
            async with self.things.db.begin() as conn:
                key = (await conn.execute(insert(device_events).values(**row))).inserted_primary_key
                assert key is not None  # an INSERT of one row has one
                notice = {"topic": topic, "value": value, "seq": key[0]}
                await enqueue(conn, tid, "device.event", notice, now=now)
                oldest_kept = await conn.scalar(
                    select(device_events.c.seq)
                    .where(device_events.c.tid == tid)
                    .order_by(device_events.c.seq.desc())
                    .offset(KEPT_EVENTS - 1)
                    .limit(1)
                )
                if oldest_kept is not None:
                    await conn.execute(
                        delete(device_events).where(
                            device_events.c.tid == tid, device_events.c.seq < oldest_kept
                        )
                    )
        except IntegrityError:
            return None
        return _push_of({**row, "seq": int(key[0])})

    async def events_since(
        self, tids: Iterable[str], after: int, *, now: int, limit: int = 200
    ) -> tuple[list[dict[str, Any]], bool]:
        """Events of ``tids`` after ``seq`` ``after`` (at most KEPT_SECONDS old), oldest
        first; and whether more follow."""
        wanted = sorted(set(tids))
        if not wanted:
            return [], False
        async with self.things.db.read() as conn:
            rows = list(
                await conn.execute(
                    select(device_events)
                    .where(
                        among(conn, device_events.c.tid, wanted),
                        device_events.c.seq > after,
                        device_events.c.t >= now - KEPT_SECONDS,
                    )
                    .order_by(device_events.c.seq)
                    .limit(limit + 1)
                )
            )
        # By mapping: a Row's ``.t`` is its typed-tuple view, not the column.
        events = [{"tid": r.tid, **_push_of(r._mapping)} for r in rows[:limit]]
        return events, len(rows) > limit

    async def last_event_seq(self) -> int:
        """The newest event's seq (0 with none): where a new app's cursor starts."""
        async with self.things.db.read() as conn:
            return int(await conn.scalar(select(func.max(device_events.c.seq))) or 0)

    async def user_add(self, tid: str, path: str, value_json: str) -> Any:
        now = self.things.now()

        def add(_info: DeviceInfo, model: ThingModel, state: dict[str, Any]) -> tuple[str, Any]:
            change = model.user_add(path, value_json)
            state.setdefault("ProUser", {}).pop(change.name, None)  # adding again replaces
            return change.path, apply(state, change, now)

        where, obj = await self.things.change(tid, add)
        await self.hub.push(tid, "prop", {"path": where, "value": obj})
        return obj

    async def user_delete(self, tid: str, path: str) -> None:
        def delete(_info: DeviceInfo, model: ThingModel, state: dict[str, Any]) -> str:
            name = model.user_delete(path)
            if name not in state.get("ProUser", {}):
                raise IVError.of(
                    ErrorCode.IVTermErr_msg_gdm_handle_leaf_path_error, f"no ProUser.{name}"
                )
            del state["ProUser"][name]
            return name

        name = await self.things.change(tid, delete)
        await self.hub.push(tid, "prop", {"path": f"ProUser.{name}", "value": None})

    # Actions and passthrough data

    async def action(
        self, tid: str, path: str, value_json: str, *, timeout: float | None = None
    ) -> Any:
        """take_action: validate, ask the device, record ctlVal/stVal; the device's answer."""
        _, model, _ = await self.things.snapshot(tid)
        change = model.app_action(path, value_json)
        outcome = await self.hub.ask(
            tid,
            "action",
            {"path": change.path, "value": change.value("ctlVal")},
            timeout or self.device_timeout,
        )
        data = outcome.raise_for_code()
        now = self.things.now()
        done = Change(
            "Action",
            change.name,
            {"ctlVal": change.value("ctlVal"), "stVal": change.value("ctlVal")},
        )

        def record(_info: DeviceInfo, _model: ThingModel, state: dict[str, Any]) -> Any:
            return apply(state, done, now)

        obj = await self.things.change(tid, record)
        await self.hub.push(tid, "prop", {"path": change.path, "value": obj})
        return data.get("value")

    async def send_data(
        self, tid: str, data: bytes, *, reply: bool, timeout: float | None = None, topic: str = ""
    ) -> bytes | None:
        """Pass data to the device; with ``reply`` return its answer, else its ack."""
        if len(data) > link.MAX_DATA_SIZE:
            raise IVError.of(
                ErrorCode.IVMessageError_ExceedsMaxLength,
                f"data larger than MAX_DATA_SIZE ({link.MAX_DATA_SIZE})",
            )
        body = {"data": link.encode_data(data), "reply": reply, "topic": topic}
        outcome = await self.hub.ask(tid, "data", body, timeout or self.device_timeout)
        answer = outcome.raise_for_code()
        if not reply:
            return None
        try:
            return link.decode_data(answer.get("data", ""))
        except ValueError:
            raise IVError.of(
                ErrorCode.IVMessageError_SendPassDevErr, "the device answered no data"
            ) from None


def _push_of(row: Any) -> dict[str, Any]:
    """An event's push (and event.since entry) from its row: ``id`` is the device's own,
    by which apps deliver it once, whatever its ``seq`` (a repeat is renumbered)."""
    event = {k: row[k] for k in ("topic", "value", "t", "seq")}
    if row["event_id"] is not None:
        event["id"] = row["event_id"]
    return event
