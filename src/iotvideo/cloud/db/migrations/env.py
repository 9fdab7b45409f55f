"""Alembic environment.

At run time the cloud passes an open connection in ``config.attributes["connection"]``.
For ``alembic revision --autogenerate`` during development (see docs/ops.md), the URL
comes from ``IOTVIDEO_DB`` instead.
"""

import asyncio
import os

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from iotvideo.cloud.db.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_env() -> None:
    engine = create_async_engine(os.environ["IOTVIDEO_DB"])
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_from_env())
