"""``GET /healthz`` and ``GET /readyz``: whether this instance can serve, dependency by
dependency (the database, the bus between instances, and the data directory, which
must take writes: device uploads land there)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from iotvideo.cloud.db import Database
from iotvideo.cloud.http_errors import DATA_DIRECTORY, storage_check

__all__ = ["router"]

router = APIRouter()


async def _checks(request: Request) -> dict[str, str]:
    db: Database = request.app.state.db
    checks = {"db": "ok", "bus": "ok" if request.app.state.bus.connected else "down"}
    checks["storage"] = await asyncio.to_thread(storage_check, request.app.state.settings.data)
    outages = request.app.state.link.outages
    if checks["storage"] == "ok":
        outages.up(DATA_DIRECTORY)
    try:
        async with db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means "not healthy"
        checks["db"] = type(exc).__name__
    return checks


@router.get("/healthz", summary="Health: the database and the bus")
async def healthz(request: Request) -> JSONResponse:
    """200 ``{"status": "ok", "db": "ok", "bus": "ok", "storage": "ok"}``, or 503 naming
    what is down (``"storage"``: ``"read-only"``, ``"full"`` or the errno of a failed
    test write)."""
    checks = await _checks(request)
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if healthy else "error", **checks}, 200 if healthy else 503)


@router.get("/readyz", summary="Readiness: take traffic only when every dependency answers")
async def readyz(request: Request) -> JSONResponse:
    """The same checks as /healthz, for a load balancer's readiness probe."""
    return await healthz(request)
