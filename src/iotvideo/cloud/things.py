"""Thing models and device state on the database.

A product's published model revisions live in ``iot_models``; each device's state tree in
``device_state`` (one JSON document). Changes run as read-modify-write in a transaction
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises writers anyway).

Group commit: the changes that arrive while a transaction runs wait for it and then go
together in the next one (one read of their devices, one of their states, one write,
one commit), each caller answered after that commit. A fleet's reports so cost a
transaction per batch instead of per report, and nothing is acknowledged before it is
stored. A change that fails (a value out of range) fails alone; one that breaks a
device's state in an unexpected way fails every change of that device in the batch,
and none of them is stored.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud.db import Database, among
from iotvideo.cloud.db.tables import device_state, devices, iot_models, message_queues, products
from iotvideo.cloud.tracing import Forwarding, queue_target, record_changes
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.thingmodel import ThingModel

__all__ = ["BatchedWrite", "DeviceInfo", "Things"]

T = TypeVar("T")
_MODEL_CACHE = 512
#: Most changes one transaction takes (the rest wait for the next).
MAX_BATCH = 500

log = logging.getLogger("iotvideo.cloud.things")
Change = Callable[["DeviceInfo", ThingModel, dict[str, Any]], Any]


@runtime_checkable
class BatchedWrite(Protocol):
    """Other rows to write with a change, written together with the batch's other
    writes of the same class (one statement for many devices instead of one each)."""

    @classmethod
    async def write_all(cls, conn: AsyncConnection, writes: Sequence[Any]) -> None:
        """Write ``writes`` (instances of this class, in device order, each device's in
        the order they came) in the batch's transaction."""


Before = Callable[[AsyncConnection], Awaitable[Any]] | BatchedWrite


@dataclass
class _Waiting:
    tid: str
    fn: Change
    future: asyncio.Future[Any]
    before: Before | None = None


@dataclass(frozen=True)
class DeviceInfo:
    tid: str
    vendor_id: str
    product_id: str
    revision: int
    disabled: bool
    online: int
    #: On the trace list (CreateTraceIds): its changes are recorded in device_logs.
    traced: bool = False
    #: Where its product forwards its messages (SetMessageQueue), if anywhere.
    forwarding: Forwarding | None = None


class Things:
    """Model definitions (cached per revision) and device state."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._models: OrderedDict[tuple[str, int], ThingModel] = OrderedDict()
        self._queue: list[_Waiting] = []
        self._committer: asyncio.Task[None] | None = None
        #: Transactions and changes committed (the batch size is their ratio).
        self.batches = 0
        self.batched = 0

    @property
    def db(self) -> Database:
        return self._db

    def now(self) -> int:
        return int(self._clock())

    async def device(self, conn: AsyncConnection, tid: str) -> DeviceInfo:
        """The device and its product's model revision; 8002 if there is no such device."""
        found = (await self._devices(conn, [tid])).get(tid)
        if found is None:
            raise IVError.of(ErrorCode.IVASrvErr_dst_notexsit, f"no device {tid!r}")
        return found

    async def model(self, conn: AsyncConnection, product_id: str, revision: int) -> ThingModel:
        key = (product_id, revision)
        cached = self._models.get(key)
        if cached is not None:
            self._models.move_to_end(key)
            return cached
        model = ThingModel.builtins_only()
        if revision > 0:
            source = await conn.scalar(
                select(iot_models.c.source).where(
                    iot_models.c.product_id == product_id, iot_models.c.revision == revision
                )
            )
            if source is not None:
                model = ThingModel.parse(source)
        self._models[key] = model
        if len(self._models) > _MODEL_CACHE:
            self._models.popitem(last=False)
        return model

    async def load(
        self, conn: AsyncConnection, tid: str
    ) -> tuple[DeviceInfo, ThingModel, dict[str, Any]]:
        """The device, its model and its state as the model shows it now (new objects of
        a newer model with their initial values); nothing is written."""
        info = await self.device(conn, tid)
        model = await self.model(conn, info.product_id, info.revision)
        doc = await conn.scalar(select(device_state.c.doc).where(device_state.c.tid == tid))
        return info, model, _state(model, doc, self.now())

    @property
    def queued(self) -> int:
        """Changes waiting for the next commit."""
        return len(self._queue)

    async def change(
        self,
        tid: str,
        fn: Callable[[DeviceInfo, ThingModel, dict[str, Any]], T],
        *,
        before: Before | None = None,
    ) -> T:
        """Run ``fn`` on the device's state and store what it changed; its result once
        committed (with the other changes of its batch).

        ``fn`` mutates the state in place, or raises before it mutates anything (a refused
        value) to change nothing. ``before`` writes other rows first in the same
        transaction (a login marks the device online): a function of the connection, or
        a :class:`BatchedWrite` written with the batch's others of its class; if it raises,
        the whole batch fails.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(tid, fn, future, before))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.ensure_future(self._commit_all())
        return await future

    async def _commit_all(self) -> None:
        """Commit the queue a batch at a time; what arrives meanwhile is the next batch."""
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            live = [w for w in batch if not w.future.done()]  # callers may have given up
            if not live:
                continue
            try:
                outcomes = await self._commit(live)
            except BaseException as exc:
                for waiting in live:
                    if not waiting.future.done():
                        waiting.future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for waiting, outcome in zip(live, outcomes, strict=True):
                if waiting.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    waiting.future.set_exception(outcome)
                else:
                    waiting.future.set_result(outcome)

    async def _commit(self, batch: list[_Waiting]) -> list[Any]:
        """One transaction for ``batch``: each change's result or exception, in order."""
        tids = sorted({w.tid for w in batch})
        outcomes: list[Any] = [None] * len(batch)
        async with self._db.begin() as conn:
            # Other rows first, in device order (as the states are locked: no deadlock).
            batched: dict[type[BatchedWrite], list[BatchedWrite]] = {}
            for waiting in sorted(batch, key=lambda w: w.tid):  # stable: as they came
                if isinstance(waiting.before, BatchedWrite):
                    batched.setdefault(type(waiting.before), []).append(waiting.before)
                elif waiting.before is not None:
                    await waiting.before(conn)
            for kind, writes in batched.items():
                await kind.write_all(conn, writes)
            infos = await self._devices(conn, tids)
            query = (
                select(device_state.c.tid, device_state.c.doc)
                .where(among(conn, device_state.c.tid, tids))
                .order_by(device_state.c.tid)
            )
            if not self._db.is_sqlite:
                query = query.with_for_update()  # in tid order: batches never deadlock
            docs = {row.tid: row.doc for row in await conn.execute(query)}
            now = self.now()
            states: dict[str, dict[str, Any]] = {}
            #: The states before the batch, of devices whose changes leave a trace.
            originals: dict[str, dict[str, Any]] = {}
            fresh: set[str] = set()
            changed: set[str] = set()  # devices with a change to store
            broken: dict[str, BaseException] = {}
            for index, waiting in enumerate(batch):
                info = infos.get(waiting.tid)
                if info is None:
                    outcomes[index] = IVError.of(
                        ErrorCode.IVASrvErr_dst_notexsit, f"no device {waiting.tid!r}"
                    )
                    continue
                model = await self.model(conn, info.product_id, info.revision)
                state = states.get(waiting.tid)
                if state is None:
                    if waiting.tid not in docs:
                        fresh.add(waiting.tid)  # its first state: a row to insert
                    state = states[waiting.tid] = _state(model, docs.get(waiting.tid), now)
                    if info.traced or info.forwarding is not None:
                        originals[waiting.tid] = copy.deepcopy(state)
                try:
                    outcomes[index] = waiting.fn(info, model, state)
                    changed.add(waiting.tid)
                except IVError as exc:
                    outcomes[index] = exc  # refused before it changed anything
                except Exception as exc:
                    log.exception("a change of %s failed", waiting.tid)
                    broken[waiting.tid] = exc
            for tid, failure in broken.items():  # its state may be half changed: keep none
                states.pop(tid, None)
                for index, waiting in enumerate(batch):
                    if waiting.tid == tid:
                        outcomes[index] = failure
            rows = [
                {"t_id": tid, "doc": state, "at": now}
                for tid, state in states.items()
                if tid in changed  # a device whose every change was refused: as it was
            ]
            for tid, original in originals.items():
                if tid in changed and tid in states:  # stored: its trace and messages too
                    info = infos[tid]
                    await record_changes(
                        conn,
                        tid,
                        original,
                        states[tid],
                        now=now,
                        traced=info.traced,
                        forwarding=info.forwarding,
                    )
            inserts = [r for r in rows if r["t_id"] in fresh]
            updates = [r for r in rows if r["t_id"] not in fresh]
            if inserts:
                await conn.execute(
                    insert(device_state),
                    [{"tid": r["t_id"], "doc": r["doc"], "updated_at": r["at"]} for r in inserts],
                )
            if updates:
                await conn.execute(
                    update(device_state)
                    .where(device_state.c.tid == bindparam("t_id"))
                    .values(
                        doc=bindparam("doc", type_=device_state.c.doc.type),
                        updated_at=bindparam("at"),
                    ),
                    updates,
                )
        self.batches += 1
        self.batched += len(batch)
        return outcomes

    async def _devices(self, conn: AsyncConnection, tids: list[str]) -> dict[str, DeviceInfo]:
        rows = await conn.execute(
            select(
                devices.c.tid,
                devices.c.vendor_id,
                devices.c.product_id,
                devices.c.disabled,
                devices.c.online,
                devices.c.traced_since,
                products.c.iot_model_revision,
                message_queues.c.queue_type,
                message_queues.c.msg_types,
                message_queues.c.topic,
            )
            .join(products, products.c.product_id == devices.c.product_id)
            .outerjoin(message_queues, message_queues.c.product_id == devices.c.product_id)
            .where(among(conn, devices.c.tid, tids))
        )
        return {
            row.tid: DeviceInfo(
                row.tid,
                row.vendor_id,
                row.product_id,
                row.iot_model_revision,
                row.disabled,
                row.online,
                traced=row.traced_since > 0,
                forwarding=None
                if row.queue_type is None
                else Forwarding(
                    row.vendor_id,
                    row.product_id,
                    row.queue_type,
                    row.msg_types,
                    queue_target(row.vendor_id, row.queue_type, row.topic),
                ),
            )
            for row in rows
        }

    async def snapshot(self, tid: str) -> tuple[DeviceInfo, ThingModel, dict[str, Any]]:
        """The device, model and state, read outside any write."""
        async with self._db.read() as conn:
            return await self.load(conn, tid)


def _state(model: ThingModel, doc: Any, now: int) -> dict[str, Any]:
    """A stored state document as ``model`` shows it (the initial state when there is none
    yet; objects of a newer model added)."""
    if doc is None:
        return model.initial_state(now)
    state = dict(doc)
    model.upgrade_state(state, now)
    return state
