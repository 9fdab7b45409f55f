"""What escapes an HTTP route becomes an answer with a code, in one place.

Routes answer their own refusals. What they do not expect lands here, and every answer
is JSON ``{"code": <seed code>, "msg": ...}``, never a bare "Internal Server Error":

- the database cannot be reached: 503, code 20004, ``Retry-After``; one log line per
  outage (:class:`~iotvideo.cloud.outages.Outages`), no traceback;
- the data directory cannot be written (full, read-only, over quota, an I/O error): 503,
  code 20004, ``Retry-After``; one log line per outage, no traceback. ``/healthz`` says
  so too (:func:`storage_check`);
- an :class:`IVError` (the bus is away: 20004; a device did not answer: 21083): its code,
  with the status its family calls for;
- anything else is a bug: 500, code 20140, and its traceback in the log.

The vendor API answers in its own format (``Response.Error``) and keeps its own handler.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from iotvideo.cloud.outages import Outages, database_unavailable
from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = ["RETRY_AFTER", "install", "storage_check", "storage_failure"]

log = logging.getLogger("iotvideo.cloud")

#: Seconds a client is told to wait before retrying after an outage.
RETRY_AFTER = 2
#: What a write to a full, read-only or failing disk raises.
STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EPERM}
)
#: Below this much free space the data directory counts as full: a segment is ~1 MB.
MIN_FREE_BYTES = 8 << 20
DATA_DIRECTORY = "the data directory"
DATABASE = "the database"

#: Statuses of the codes a route may let escape (others: 500 or 400 by family).
STATUS = {
    int(ErrorCode.IVTermErr_msg_calling_no_srv_addr): 503,
    int(ErrorCode.IVASrvErr_dst_offline): 409,
    int(ErrorCode.IVASrvErr_dst_notexsit): 404,
    int(ErrorCode.IVASrvErr_dst_error_relation): 403,
    int(ErrorCode.IVTermErr_msg_calling_check_token_error): 401,
    int(ErrorCode.IVAckErr_NoResponse): 504,
    int(ErrorCode.IVTermErr_msg_gdm_handle_processing): 429,
}


def storage_failure(error: BaseException) -> bool:
    """Whether ``error`` is the disk refusing a write (not a bug, not the network)."""
    return isinstance(error, OSError) and error.errno in STORAGE_ERRNOS


def _answer(request: Request, status: int, code: int, msg: str, **headers: str) -> JSONResponse:
    """The error's JSON, with the headers a router asks its errors to carry (WHEP's
    CORS: a browser page reads no answer without them)."""
    extra: dict[str, str] = getattr(request.state, "error_headers", {})
    return JSONResponse(
        {"code": code, "msg": msg}, status_code=status, headers={**extra, **headers}
    )


def _outages(request: Request) -> Outages:
    link = getattr(request.app.state, "link", None)
    return link.outages if link is not None else Outages()


def _retry_soon(request: Request, what: str) -> JSONResponse:
    return _answer(
        request,
        503,
        int(ErrorCode.IVTermErr_msg_calling_no_srv_addr),
        f"{what} of the cloud is unavailable; retry in {RETRY_AFTER} s",
        **{"Retry-After": str(RETRY_AFTER)},
    )


async def _on_failure(request: Request, exc: Exception) -> JSONResponse:
    if storage_failure(exc):
        _outages(request).down(DATA_DIRECTORY, exc)
        return _retry_soon(request, "the storage")
    if database_unavailable(exc):
        _outages(request).down(DATABASE, exc)
        return _retry_soon(request, "the database")
    return await _on_bug(request, exc)


async def _on_iv_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IVError)
    code = int(exc.code)
    status = STATUS.get(code, 400 if 20100 <= code < 20150 else 500)
    headers = {"Retry-After": str(RETRY_AFTER)} if status == 503 else {}
    return _answer(request, status, code, exc.message, **headers)


async def _on_bug(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return await _internal_error(request, exc)


async def _internal_error(request: Request, _exc: Exception) -> JSONResponse:
    code = int(ErrorCode.IVTermErr_msg_user_cmd_internal_error)
    return _answer(request, 500, code, "internal error")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``. The outage handlers name the classes they take,
    so Starlette's exception middleware answers them and nothing is logged but the outage
    line. The one for ``Exception`` runs in Starlette's outermost layer, which answers
    with it, then raises again so that the server logs the bug's traceback."""
    app.add_exception_handler(IVError, _on_iv_error)
    app.add_exception_handler(OSError, _on_failure)
    app.add_exception_handler(SQLAlchemyError, _on_failure)
    app.add_exception_handler(Exception, _internal_error)


def storage_check(data: Path) -> str:
    """``"ok"``, or why ``data`` cannot take writes now: ``"read-only"``, ``"full"``, or
    the errno name a test write failed with. Blocking: run it in a thread."""
    try:
        stat = os.statvfs(data)
        if stat.f_flag & os.ST_RDONLY:
            return "read-only"
        if stat.f_bavail * stat.f_frsize < MIN_FREE_BYTES:
            return "full"
        probe = data / f".health-{secrets.token_hex(4)}"
        try:
            probe.write_bytes(b"ok")
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    return "ok"
