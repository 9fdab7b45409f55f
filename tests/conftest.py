"""Fixtures: cloud servers on SQLite and on PostgreSQL (a schema per test module)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from hypothesis import settings
from sqlalchemy.engine import make_url

from tests.link.world import World, make_world
from tests.support import PG_URL, REDIS_URL, Cloud, start_cloud

# `HYPOTHESIS_PROFILE=deep make unit` fuzzes ten times longer than CI does.
settings.register_profile("ci", max_examples=150)
settings.register_profile("deep", max_examples=1500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _pg_dsn() -> str:
    url = make_url(PG_URL).set(drivername="postgresql", query={})
    return url.render_as_string(hide_password=False)


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(_pg_dsn())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def pg_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for this module, dropped at its end.

    One per module, not per session: the clouds of a module run background work (webhook
    retries, presence release of instances that stopped beating) on whatever rows earlier
    modules left, so a shared schema let one module's leftovers change another's "nothing
    changed" snapshots (a vendor-fuzz run saw webhook retries of a group-commit test's
    rows). Creating and migrating a schema costs about 0.1 s.
    """
    schema = f"iv_test_{secrets.token_hex(4)}"
    asyncio.run(_pg(f"CREATE SCHEMA {schema}"))
    try:
        url = make_url(PG_URL).update_query_dict({"search_path": schema})
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(_pg(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def cloud(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cloud]:
    """A running cloud on each backend. Tests isolate themselves with their own vendor key."""
    data = tmp_path_factory.mktemp("cloud")
    db = request.getfixturevalue("pg_schema_url") if request.param == "postgres" else None
    server = start_cloud(data, db)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sqlite_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """A running cloud on the embedded default (SQLite)."""
    server = start_cloud(tmp_path_factory.mktemp("cloud"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def pair(pg_schema_url: str, tmp_path: Path) -> Iterator[tuple[Cloud, Cloud, World]]:
    """Two cloud instances on one PostgreSQL schema and the machine's Redis, and a
    vendor's world made through the first. A test may kill either."""
    a = start_cloud(tmp_path / "a", pg_schema_url, bus=REDIS_URL)
    b = start_cloud(tmp_path / "b", pg_schema_url, bus=REDIS_URL)
    try:
        yield a, b, make_world(a)
    finally:
        for cloud in (a, b):  # a killed one too: stop() closes its log pipe
            cloud.stop(signal.SIGKILL if cloud is a else signal.SIGTERM)
