"""A cloud in the test's own process, on a clock the test moves forward.

The same app, uvicorn and WebSockets as `iotvideo cloud`, for tests about time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn

from iotvideo.cloud import CloudSettings, create_app
from iotvideo.cloud.server import WS_OPTIONS, bind
from tests.support import CloudAddress


class Clock:
    """Real time plus an offset the test controls."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@asynccontextmanager
async def inproc_cloud(
    data: Path, clock: Clock, *, uvicorn_options: dict[str, Any] | None = None, **settings_: Any
) -> AsyncIterator[CloudAddress]:
    """The cloud on ``clock``; ``settings_`` override its settings (e.g. a wide
    ``signature_max_skew`` for vendor calls while the clock is days away),
    ``uvicorn_options`` the server's (e.g. its ping interval)."""
    options: dict[str, Any] = {"heartbeat_interval": 0.05, "log_level": "warning"}
    settings = CloudSettings(data=data, **(options | settings_))
    ready = asyncio.Event()
    app = create_app(settings, clock=clock, on_ready=ready.set)
    sock = bind("127.0.0.1", 0)
    options = WS_OPTIONS | (uvicorn_options or {})
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", **options))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    await ready.wait()
    try:
        yield CloudAddress(data, settings.db_url, f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        await serving
        sock.close()
