"""What a logging-in device's proof is checked against, read for many logins at once.

After an instance dies its devices log in again elsewhere all together. One query per
login cost about an eighth of a login's CPU (SQLAlchemy and the driver, per statement);
:class:`LoginKeys` reads the devices of every login that arrives while the previous read
runs in one query (as ``Things`` commits state changes), so a lone login waits for no one
and a storm shares its reads.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY

from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import bindings, devices

__all__ = ["LoginKey", "LoginKeys"]

#: Devices read by one query at most.
MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class LoginKey:
    """A device's public key, whether it is disabled, has an owner, is traced."""

    public_key: bytes
    disabled: bool
    owned: bool
    #: On the vendor's trace list (CreateTraceIds).
    traced: bool = False


def _query(where: ColumnElement[bool]) -> Select[Any]:
    return select(
        devices.c.tid,
        devices.c.public_key,
        devices.c.disabled,
        devices.c.traced_since,
        select(bindings.c.access_id)
        .where(bindings.c.tid == devices.c.tid, bindings.c.role == "owner")
        .exists()
        .label("owned"),
    ).where(where)


# Built once: SQLAlchemy derives a new statement's cache key on every execution (a tenth
# of a login's CPU when each login built its own). One SQL text whatever the count.
_ON_POSTGRES = _query(devices.c.tid == any_(bindparam("tids", type_=ARRAY(String))))
_ON_SQLITE = _query(devices.c.tid.in_(bindparam("tids", expanding=True)))


class LoginKeys:
    """Reads :class:`LoginKey` rows, the logins that wait together in one query."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: dict[str, list[asyncio.Future[LoginKey | None]]] = {}
        self._reader: asyncio.Future[None] | None = None

    async def get(self, tid: str) -> LoginKey | None:
        """The device's login key (None: no such device). Database errors are raised."""
        future: asyncio.Future[LoginKey | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tid, []).append(future)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read_all())
        return await future

    async def _read_all(self) -> None:
        """Read what waits, a batch at a time; what arrives meanwhile is the next batch."""
        while self._waiting:
            tids = list(itertools.islice(self._waiting, MAX_BATCH))
            batch = {tid: self._waiting.pop(tid) for tid in tids}
            try:
                found = await self._read(tids)
            except BaseException as exc:
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for tid, futures in batch.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found.get(tid))

    async def _read(self, tids: list[str]) -> dict[str, LoginKey]:
        query = _ON_SQLITE if self._db.is_sqlite else _ON_POSTGRES
        async with self._db.read() as conn:
            rows = await conn.execute(query, {"tids": tids})
            return {
                row.tid: LoginKey(
                    bytes(row.public_key),
                    bool(row.disabled),
                    bool(row.owned),
                    traced=row.traced_since > 0,
                )
                for row in rows
            }
