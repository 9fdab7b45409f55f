"""The web console at ``/console``: a person signs in with an AccessId and AccessToken and
watches, talks to and controls the cameras that user may reach, from any browser.

The pages are plain ES modules shipped inside the package (``cloud/console/``; hls.js is a
committed copy of the npm package, ``scripts/vendor-hls.sh``): no CDN, no build step. The
page talks to the cloud exactly as the app SDK does: the link WebSocket (``/link/app``)
for devices, the thing model, events and live media (WebRTC, signaled with
``media.offer``), and the VAS HTTP API with the bearer token for cloud storage and event
pictures. The only endpoint of its own is ``POST /console/qr``: the provisioning QR code
as SVG, drawn with segno from what the app SDK puts in it.

The token stays in the tab's sessionStorage and travels in the login frame and in
``Authorization`` headers, never in a URL. The pages are served with a strict Content
Security Policy (no inline script, no other origin).
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from iotvideo.cloud.vas import Refused, app_token, read_capped
from iotvideo.protocol.errors import ErrorCode
from iotvideo.protocol.provision import WifiConfig, qr_payload

__all__ = ["FILES", "ConsoleFiles", "router"]

router = APIRouter()

#: Where the console's pages live (package data).
FILES = Path(__file__).with_name("console")

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; style-src 'self'; script-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page asks for the microphone (talk) and nothing else.
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
}


class ConsoleFiles(StaticFiles):
    """The console's files with its security headers; pages revalidate on every load."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


@router.get("/console", include_in_schema=False)
async def console_root() -> Response:
    return RedirectResponse("/console/", status_code=308)


@router.post("/console/qr", summary="The provisioning QR code (SVG) for a new camera")
async def provisioning_qr(request: Request) -> Response:
    """JSON ``{"ssid", "password", "token"}`` (the bind token from ``bindtoken.create``) in,
    the QR code a camera scans out, as SVG; the same text as the app SDK's
    ``net_config.qrcode``. Needs a live user token (``Authorization: Bearer``)."""
    try:
        await app_token(request)
        try:
            body: Any = json.loads(await read_capped(request, 4096))
        except ValueError:
            raise Refused(
                400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "the body is not JSON"
            ) from None
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) for k in ("ssid", "password", "token")
        ):
            raise Refused(
                400,
                ErrorCode.IVTermErr_msg_user_cmd_param_error,
                "send ssid, password and token as strings",
            )
        try:
            config = WifiConfig(body["ssid"], body["password"], body["token"])
        except ValueError as exc:
            raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, str(exc)) from None
    except Refused as exc:
        return JSONResponse({"code": exc.code, "msg": exc.msg}, status_code=exc.status)
    svg = await asyncio.to_thread(_svg, qr_payload(config))  # CPU work: off the event loop
    # The code holds the Wi-Fi password: never cached.
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


def _svg(text: str) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=6, border=4)
    return out.getvalue()
