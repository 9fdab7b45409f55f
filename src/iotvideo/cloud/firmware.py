"""Firmware files kept by the cloud itself (instead of a URL elsewhere): stored under
``<data>/firmware`` by ``iotvideo vendor firmware``, or PUT to the signed URL that the
vendor API's CreateUploadPath gives, and served at ``/firmware/<name>``, names made
unguessable, so only devices told the URL (by an offer) fetch them."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import shutil
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from iotvideo.protocol.vas import verify_path

__all__ = ["MAX_FIRMWARE_BYTES", "file_digest", "router", "store_firmware"]

router = APIRouter()

_NAME = re.compile(r"^[0-9a-f]{32}-[0-9A-Za-z._-]{1,64}\Z")
#: The largest firmware file a signed upload URL takes.
MAX_FIRMWARE_BYTES = 512 << 20


def store_firmware(data: Path, source: Path) -> tuple[str, int, str]:
    """Copy ``source`` into the cloud's firmware folder: (name, size, MD5)."""
    folder = data / "firmware"
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^0-9A-Za-z._-]", "_", source.name)[:64] or "firmware.bin"
    name = f"{secrets.token_hex(16)}-{safe}"
    target = folder / name
    shutil.copyfile(source, target)
    return name, target.stat().st_size, file_digest(target)


def file_digest(path: Path) -> str:
    """The MD5 of a file, as UploadOtaVersion's Md5 names it."""
    digest = hashlib.md5()  # noqa: S324 - the platform's file check, not security
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@router.get("/firmware/{name}")
async def firmware_file(request: Request, name: str) -> Response:
    path = request.app.state.settings.data / "firmware" / name
    if not _NAME.match(name) or not path.is_file():
        return JSONResponse({"code": 404, "msg": "no such firmware file"}, status_code=404)
    return FileResponse(path, media_type="application/octet-stream")


@router.put("/firmware/{name}", summary="Upload a firmware file to a CreateUploadPath URL")
async def upload_firmware(request: Request, name: str) -> Response:
    """Store the body as ``name``, when the URL's ``exp`` and ``sig`` are CreateUploadPath's
    and have not expired. Another PUT to the same URL replaces the file."""
    state = request.app.state
    try:
        expires = int(request.query_params.get("exp", ""))
    except ValueError:
        expires = -1
    signature = request.query_params.get("sig", "")
    now = int(state.link.now())
    if not _NAME.match(name) or not verify_path(
        state.url_secret, f"/firmware/{name}", expires, signature, now
    ):
        return _refuse(
            403, "the upload URL is not signed or has expired; ask CreateUploadPath again"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FIRMWARE_BYTES:
        return _refuse(413, f"a firmware file is at most {MAX_FIRMWARE_BYTES} bytes")
    folder: Path = state.settings.data / "firmware"
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    part = folder / f"{name}.{secrets.token_hex(4)}.part"
    size = 0
    try:
        with part.open("wb") as f:  # small writes; chunks arrive at network speed
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_FIRMWARE_BYTES:
                    return _refuse(413, f"a firmware file is at most {MAX_FIRMWARE_BYTES} bytes")
                await asyncio.to_thread(f.write, chunk)
        if size == 0:
            return _refuse(400, "the body is empty: PUT the firmware file")
    except ClientDisconnect:  # the uploader went away: nothing is kept
        return _refuse(400, "the upload was cut off; PUT the file again")
    else:
        await asyncio.to_thread(part.replace, folder / name)
    finally:
        part.unlink(missing_ok=True)
    return JSONResponse({"code": 0, "msg": "Success", "data": {"size": size}})


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": status, "msg": message}, status_code=status)
