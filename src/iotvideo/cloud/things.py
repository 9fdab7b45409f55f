"""Thing models and device state on the database.

A product's published model revisions live in ``iot_models``; each device's state tree in
``device_state`` (one JSON document). Changes run as read-modify-write in one transaction
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises writers anyway).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import device_state, devices, iot_models, products
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.thingmodel import ThingModel

__all__ = ["DeviceInfo", "Things"]

T = TypeVar("T")
_MODEL_CACHE = 512


@dataclass(frozen=True)
class DeviceInfo:
    tid: str
    vendor_id: str
    product_id: str
    revision: int
    disabled: bool
    online: int


class Things:
    """Model definitions (cached per revision) and device state."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._models: OrderedDict[tuple[str, int], ThingModel] = OrderedDict()

    @property
    def db(self) -> Database:
        return self._db

    def now(self) -> int:
        return int(self._clock())

    async def device(self, conn: AsyncConnection, tid: str) -> DeviceInfo:
        """The device and its product's model revision; 8002 if there is no such device."""
        row = (
            await conn.execute(
                select(
                    devices.c.tid,
                    devices.c.vendor_id,
                    devices.c.product_id,
                    devices.c.disabled,
                    devices.c.online,
                    products.c.iot_model_revision,
                )
                .join(products, products.c.product_id == devices.c.product_id)
                .where(devices.c.tid == tid)
            )
        ).first()
        if row is None:
            raise IVError.of(ErrorCode.IVASrvErr_dst_notexsit, f"no device {tid!r}")
        return DeviceInfo(
            row.tid, row.vendor_id, row.product_id, row.iot_model_revision, row.disabled, row.online
        )

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
        self, conn: AsyncConnection, tid: str, *, for_update: bool = False
    ) -> tuple[DeviceInfo, ThingModel, dict[str, Any]]:
        """The device, its model and its state (created or upgraded as needed)."""
        info = await self.device(conn, tid)
        model = await self.model(conn, info.product_id, info.revision)
        query = select(device_state.c.doc).where(device_state.c.tid == tid)
        doc = await conn.scalar(query.with_for_update() if for_update else query)
        now = self.now()
        if doc is None:
            state = model.initial_state(now)
            if for_update:
                await conn.execute(insert(device_state).values(tid=tid, doc=state, updated_at=now))
        else:
            state = dict(doc)
            if model.upgrade_state(state, now) and for_update:
                await self.save(conn, tid, state)
        return info, model, state

    async def save(self, conn: AsyncConnection, tid: str, state: dict[str, Any]) -> None:
        await conn.execute(
            update(device_state)
            .where(device_state.c.tid == tid)
            .values(doc=state, updated_at=self.now())
        )

    async def change(
        self, tid: str, fn: Callable[[DeviceInfo, ThingModel, dict[str, Any]], T]
    ) -> T:
        """Run ``fn`` on the device's state in one transaction and store what it changed.

        ``fn`` mutates the state in place (or raises to change nothing).
        """
        async with self._db.begin() as conn:
            info, model, state = await self.load(conn, tid, for_update=True)
            result = fn(info, model, state)
            await self.save(conn, tid, state)
            return result

    async def snapshot(self, tid: str) -> tuple[DeviceInfo, ThingModel, dict[str, Any]]:
        """The device, model and state, read outside any write."""
        async with self._db.read() as conn:
            return await self.load(conn, tid)
