"""HTTP adapter of the vendor API: ``POST /`` (and ``GET /``), Tencent Cloud API 3.0 style.

Every answer is HTTP 200 with a JSON envelope, as API 3.0 clients expect::

    {"Response": {...fields..., "RequestId": "..."}}
    {"Response": {"Error": {"Code": "...", "Message": "..."}, "RequestId": "..."}}
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from iotvideo.cloud.outages import database_unavailable
from iotvideo.cloud.vendor.api import VendorApi, VendorRequest
from iotvideo.cloud.vendor.errors import Code, VendorError

__all__ = ["router"]

log = logging.getLogger("iotvideo.cloud.vendor")
router = APIRouter()


@router.api_route(
    "/",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    summary="Vendor API (Tencent Cloud API 3.0, service iotvideo, version 2019-11-26)",
    response_class=JSONResponse,
)
async def vendor_api(request: Request) -> JSONResponse:
    """Run one vendor-API action named by ``X-TC-Action``, signed with TC3-HMAC-SHA256."""
    response = await _vendor_api(request)
    action = request.headers.get("x-tc-action", "")
    api: VendorApi = request.app.state.vendor_api
    known = action if action in api.actions else "unknown"
    code = response.headers.get("x-iotvideo-code", "0")
    request.app.state.metrics.vendor_actions.labels(known, code).inc()
    return response


async def _vendor_api(request: Request) -> JSONResponse:
    api: VendorApi = request.app.state.vendor_api
    limit: int = request.app.state.settings.max_body_bytes
    request_id = str(uuid.uuid4())
    try:
        if request.method not in ("GET", "POST"):
            raise VendorError(Code.UNSUPPORTED_PROTOCOL, "Use POST (or GET) on /.")
        body = await _read_body(request, limit)
        headers = {k.lower(): v for k, v in request.headers.items()}
        call = VendorRequest(request.method, headers, request.url.query, body)
        fields = await api.handle(call, request_id)
        request.app.state.link.outages.up("the database")
        return _reply({**fields, "RequestId": request_id})
    except VendorError as exc:
        log.info("vendor API %s refused: %s", request.headers.get("x-tc-action"), exc)
        return _error(exc, request_id)
    except Exception as exc:
        if database_unavailable(exc):
            request.app.state.link.outages.down("the database", exc)
            return _error(
                VendorError(
                    Code.RESOURCE_UNAVAILABLE,
                    "The cloud's database is unavailable; retry shortly.",
                ),
                request_id,
            )
        log.exception(
            "vendor API %s failed (RequestId %s)", request.headers.get("x-tc-action"), request_id
        )
        return _error(
            VendorError(
                Code.INTERNAL_ERROR,
                f"Internal error; give the operator the RequestId {request_id}.",
            ),
            request_id,
        )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise VendorError(Code.INVALID_PARAMETER, "The request body was cut off.") from None
    return b"".join(chunks)


def _too_large(limit: int) -> VendorError:
    return VendorError(
        Code.REQUEST_SIZE_LIMIT_EXCEEDED, f"The request body is larger than {limit} bytes."
    )


def _reply(response: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"Response": response}, media_type="application/json")


def _error(exc: VendorError, request_id: str) -> JSONResponse:
    response = _reply(
        {"Error": {"Code": exc.code.value, "Message": exc.message}, "RequestId": request_id}
    )
    response.headers["x-iotvideo-code"] = exc.code.value  # for the metrics; clients ignore it
    return response
