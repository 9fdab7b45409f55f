"""The cloud's ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from iotvideo import __version__
from iotvideo.cloud import health
from iotvideo.cloud.db import Database
from iotvideo.cloud.janitor import run_janitor
from iotvideo.cloud.settings import CloudSettings
from iotvideo.cloud.vendor import VendorApi, register_all
from iotvideo.cloud.vendor.router import router as vendor_router

__all__ = ["create_app"]


def create_app(
    settings: CloudSettings,
    *,
    clock: Callable[[], float] = time.time,
    on_ready: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the cloud app. The database is opened and migrated when the app starts.

    ``clock`` returns UNIX seconds; tests pass their own. ``on_ready`` runs once startup
    (migrations included) has finished.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data.mkdir(parents=True, exist_ok=True)
        db = Database(settings.db_url)
        try:
            await db.migrate()
            api = VendorApi(db, clock=clock, max_skew=settings.signature_max_skew)
            register_all(api)
            app.state.settings = settings
            app.state.db = db
            app.state.vendor_api = api
            janitor = asyncio.create_task(
                run_janitor(db, clock=clock, interval=settings.purge_interval), name="janitor"
            )
            if on_ready is not None:
                on_ready()
            try:
                yield
            finally:
                janitor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await janitor
        finally:
            await db.close()

    app = FastAPI(
        title="iotvideo cloud",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.include_router(health.router)
    app.include_router(vendor_router)
    return app
