"""``GET /healthz``: the process is up and its database answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from iotvideo.cloud.db import Database

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz", summary="Liveness and database check")
async def healthz(request: Request) -> JSONResponse:
    db: Database = request.app.state.db
    try:
        async with db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means "not healthy"
        return JSONResponse({"status": "error", "db": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok", "db": "ok"})
