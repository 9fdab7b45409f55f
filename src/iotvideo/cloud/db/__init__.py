"""The cloud's database: engine, sessions and migrations (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import ColumnElement, Connection, any_, bindparam, event, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["MIGRATIONS", "Database", "among"]

MIGRATIONS = Path(__file__).parent / "migrations"

# Any constant works; it only has to be the same in every cloud process.
_MIGRATION_LOCK = 0x10770_1DE0


class Database:
    """An async engine, a session factory and the schema migrations.

    URLs: ``sqlite+aiosqlite:///FILE`` or ``postgresql+asyncpg://USER@HOST[:PORT]/DB``.
    A PostgreSQL URL may carry ``?search_path=SCHEMA`` to keep iotvideo's tables in one
    schema (asyncpg has no URL option for it, so it is turned into a server setting here).
    """

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        parsed = make_url(url)
        connect_args: dict[str, Any] = {}
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if not self.is_sqlite and "search_path" in parsed.query:
            search_path = parsed.query["search_path"]
            connect_args["server_settings"] = {"search_path": str(search_path)}
            parsed = parsed.difference_update_query(["search_path"])
        if self.is_sqlite and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.url = parsed
        # SQLite allows one writer at a time, and a second one waits in its busy handler,
        # which sleeps in steps of up to 100 ms. So writes queue in asyncio instead, on
        # `_write_lock` (see begin()); reads run beside them (WAL).
        # PostgreSQL: a fixed pool; in a burst (a login storm) requests wait for one of its
        # connections rather than open more: a connection beyond the pool is closed when
        # it is returned, and opening one (a TLS attempt, authentication, settings) costs
        # ten times the queries it serves (seen: logins at a third of the rate).
        self.engine: AsyncEngine = create_async_engine(
            parsed,
            connect_args=connect_args,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=15,
            # Device states are JSON documents read and written whole by every change: a
            # tenth of a login's CPU with the standard library's codec.
            json_serializer=_json_text,
            json_deserializer=orjson.loads,
        )
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            _tune_sqlite(self.engine)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed at the end (rolled back on error).

        Do not open another write transaction while holding one: on SQLite they queue on
        one lock.
        """
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in autocommit mode, for reads."""
        async with self.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def migrate(self) -> None:
        """Bring the schema to the newest revision. Safe to run from many processes at once."""
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                # Two instances starting together must not both create the tables.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            await conn.run_sync(_upgrade)

    async def revision(self) -> str | None:
        """The schema revision the database is at (``None`` before the first migration)."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )

    async def close(self) -> None:
        await self.engine.dispose()


def _json_text(value: Any) -> str:
    """``value`` as JSON text, as ``json.dumps`` writes it (orjson's, or the standard
    library's for what orjson refuses: integers beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def among(
    conn: AsyncConnection, column: ColumnElement[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """``column IN values`` for a statement run on ``conn``: one SQL text whatever the
    number of values.

    On PostgreSQL it is ``column = ANY($1)`` with an array: an expanding ``IN`` makes a new
    SQL text for each count of values, and each is prepared and kept by asyncpg on every
    pooled connection (seen as memory growing through a soak, one statement per
    group-commit batch size). SQLite keeps ``IN``; its statement cache is bounded.
    """
    listed = list(values)
    if conn.dialect.name == "sqlite":
        return column.in_(listed)
    return column == any_(bindparam(None, listed, type_=ARRAY(column.type)))


def _upgrade(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _tune_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and write-intent transactions.

    SQLite cannot upgrade a read transaction to a write one while another writer is
    active (SQLITE_BUSY without waiting), so every transaction starts with BEGIN IMMEDIATE
    and waits its turn under busy_timeout instead.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Reads (Database.read) run in autocommit mode and must take no lock at all.
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
