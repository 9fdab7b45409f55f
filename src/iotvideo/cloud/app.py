"""The cloud's ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp

from iotvideo import __version__
from iotvideo.cloud import health, http_errors
from iotvideo.cloud.bus import Bus, make_bus
from iotvideo.cloud.console import FILES as CONSOLE_FILES
from iotvideo.cloud.console import ConsoleFiles
from iotvideo.cloud.console import router as console_router
from iotvideo.cloud.db import Database
from iotvideo.cloud.firmware import router as firmware_router
from iotvideo.cloud.janitor import run_janitor
from iotvideo.cloud.limits import Limits, RateLimiter
from iotvideo.cloud.link import presence
from iotvideo.cloud.link.context import LinkContext
from iotvideo.cloud.link.hub import Hub
from iotvideo.cloud.link.messaging import Messaging
from iotvideo.cloud.link.presence import run_presence
from iotvideo.cloud.link.router import LinkEndpoints
from iotvideo.cloud.metrics import Metrics, MetricsMiddleware
from iotvideo.cloud.metrics import router as metrics_router
from iotvideo.cloud.replay import make_ledger
from iotvideo.cloud.retention import run_retention
from iotvideo.cloud.settings import CloudSettings
from iotvideo.cloud.streams import router as streams_router
from iotvideo.cloud.things import Things
from iotvideo.cloud.vas import router as vas_router
from iotvideo.cloud.vas import url_secret
from iotvideo.cloud.vendor import VendorApi, register_all
from iotvideo.cloud.vendor.router import router as vendor_router
from iotvideo.cloud.webhooks import WebhookSender
from iotvideo.cloud.whep import router as whep_router

__all__ = ["create_app"]


class _CloudApp(FastAPI):
    """FastAPI with the link endpoints ahead of all its layers.

    Added with ``add_middleware`` they sat inside FastAPI's error, telemetry and body-limit
    middlewares, whose coroutines live as long as each connection (~1 KB per idle device,
    measured with tracemalloc) and do nothing for a WebSocket.
    """

    def build_middleware_stack(self) -> ASGIApp:
        return LinkEndpoints(super().build_middleware_stack())


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
        db = Database(settings.db_url, pool_size=settings.db_pool)
        bus = make_bus(settings.bus)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(db.close)
            await db.migrate()
            await bus.start()
            stack.push_async_callback(bus.close)
            link = await _start_link(settings, db, bus, clock, stack)
            ledger = make_ledger(settings.bus)
            stack.push_async_callback(ledger.close)
            api = VendorApi(
                db,
                clock=clock,
                max_skew=settings.signature_max_skew,
                link=link,
                ledger=ledger,
                limiter=link.limits.vendor,
                repeat_window=settings.signature_repeat_window,
            )
            register_all(api)
            app.state.settings = settings
            app.state.db = db
            app.state.bus = bus
            app.state.vendor_api = api
            app.state.link = link
            link.metrics = app.state.metrics
            app.state.metrics.watch(app.state)
            sessions: set[object] = set()
            app.state.link_sessions = sessions
            app.state.url_secret = url_secret(settings.data, settings.url_secret)
            link.url_secret = app.state.url_secret
            outages = link.outages
            _background(
                stack,
                run_janitor(db, clock=clock, interval=settings.purge_interval, outages=outages),
            )
            _background(stack, run_presence(link, sessions))
            streams = None
            if settings.bus.startswith(("redis://", "rediss://", "unix://")):
                from redis.asyncio import Redis  # the redis extra, as the bus needs it

                streams = Redis.from_url(settings.bus)  # message queues' Redis Streams
                stack.push_async_callback(streams.aclose)
            sender = WebhookSender(
                db,
                link.http,
                clock=clock,
                metrics=app.state.metrics,
                outages=link.outages,
                streams=streams,
            )
            app.state.webhooks = sender
            _background(stack, sender.run())
            _background(
                stack,
                run_retention(
                    db,
                    settings.data,
                    clock=clock,
                    interval=settings.retention_interval,
                    outages=outages,
                ),
            )
            # Everything loaded so far (modules, tables, settings) lives as long as the
            # process: keep it out of the collector's full passes, which otherwise walk it
            # all and stalled large answers (an 8640-segment playlist) by ~100 ms each time.
            gc.freeze()
            if on_ready is not None:
                on_ready()
            yield

    app = _CloudApp(
        title="iotvideo cloud",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.add_middleware(MetricsMiddleware)
    http_errors.install(app)
    app.include_router(health.router)
    app.include_router(metrics_router)
    app.include_router(whep_router)
    app.include_router(streams_router)
    app.include_router(console_router)
    app.include_router(vendor_router)
    app.include_router(vas_router)
    app.include_router(firmware_router)
    app.mount("/console", ConsoleFiles(directory=CONSOLE_FILES, html=True), name="console")
    return app


async def _start_link(
    settings: CloudSettings,
    db: Database,
    bus: Bus,
    clock: Callable[[], float],
    stack: contextlib.AsyncExitStack,
) -> LinkContext:
    hub = Hub(bus, instance_id=secrets.token_hex(6))
    await hub.start()
    stack.push_async_callback(hub.close)
    things = Things(db, clock)
    messaging = Messaging(things, hub, device_timeout=settings.device_timeout)
    stack.push_async_callback(messaging.close)
    http = httpx.AsyncClient()
    stack.push_async_callback(http.aclose)
    limits = Limits(
        vendor=RateLimiter(settings.vendor_rate, 2 * settings.vendor_rate),
        logins=RateLimiter(settings.login_rate, 10 * settings.login_rate),
        link_rate=settings.link_rate,
        link_burst=2 * settings.link_rate,
        max_pending=settings.max_pending_links,
        max_pending_per_address=settings.max_pending_per_address,
    )
    link = LinkContext(settings, db, things, hub, messaging, http, clock, limits)
    await presence.register(link)
    stack.push_async_callback(presence.unregister, link)
    return link


def _background(stack: contextlib.AsyncExitStack, coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` until the app stops."""
    task = asyncio.create_task(coro)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)
