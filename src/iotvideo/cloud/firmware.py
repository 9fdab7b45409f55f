"""Firmware files kept by the cloud itself (instead of a URL elsewhere): stored under
``<data>/firmware`` by ``iotvideo vendor firmware`` and served at ``/firmware/<name>``,
names made unguessable, so only devices told the URL (by an offer) fetch them."""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

__all__ = ["router", "store_firmware"]

router = APIRouter()

_NAME = re.compile(r"^[0-9a-f]{32}-[0-9A-Za-z._-]{1,64}\Z")


def store_firmware(data: Path, source: Path) -> tuple[str, int, str]:
    """Copy ``source`` into the cloud's firmware folder: (name, size, MD5)."""
    folder = data / "firmware"
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^0-9A-Za-z._-]", "_", source.name)[:64] or "firmware.bin"
    name = f"{secrets.token_hex(16)}-{safe}"
    target = folder / name
    shutil.copyfile(source, target)
    digest = hashlib.md5()  # noqa: S324 - the platform's file check, not security
    with target.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return name, target.stat().st_size, digest.hexdigest()


@router.get("/firmware/{name}")
async def firmware_file(request: Request, name: str) -> Response:
    path = request.app.state.settings.data / "firmware" / name
    if not _NAME.match(name) or not path.is_file():
        return JSONResponse({"code": 404, "msg": "no such firmware file"}, status_code=404)
    return FileResponse(path, media_type="application/octet-stream")
