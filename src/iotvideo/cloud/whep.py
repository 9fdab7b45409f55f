"""WHEP (the IETF WebRTC-HTTP egress protocol, RFC 9725): any WHEP player (a browser, OBS,
GStreamer's whepsrc, Home Assistant) watches a camera live with a bearer token.

::

    POST /whep/<tid>?source=&definition=     Content-Type: application/sdp
    Authorization: Bearer <AccessToken>      (a user's, a device token or an anonymous one)
      -> 201 Created, the device's SDP answer, Location: /whep/<tid>/<session>/<sig>
    DELETE <Location>                        -> 200: the device ends the session
    PATCH <Location>                         -> 405: this server takes complete offers
                                                (gather ICE candidates before posting)

The cloud only relays the offer and the answer, exactly as ``media.offer`` on the link
(the same access rules, the same device op): media flows peer to peer, or through the
TURN relay the device is given. Refusals carry the seed's code in a JSON body: 401
(20010) unknown or expired token, 403 (8003) no relation, 404 (8002) no such device, 409
(8000) the device is offline, 503 (20007) its viewing channels are busy, 400 (20143) a
malformed offer. CORS lets browser pages of any origin post (the bearer token is the
credential; no cookies).

The session's URL is signed with the cloud's URL key, so any instance behind a balancer
can end it; ending it also needs the bearer token that may watch the device.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from iotvideo.cloud.turn import ice_servers
from iotvideo.cloud.vas import Refused, app_access, read_capped
from iotvideo.protocol.errors import ErrorCode
from iotvideo.protocol.media import DEFINITIONS

__all__ = ["router"]

log = logging.getLogger("iotvideo.cloud.whep")
router = APIRouter()

MAX_SDP = 32_000
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, ETag",
    "Access-Control-Max-Age": "600",
}
#: The device's and the cloud's codes, as HTTP statuses.
STATUS = {
    int(ErrorCode.IVASrvErr_dst_offline): 409,
    int(ErrorCode.IVASrvErr_dst_notexsit): 404,
    int(ErrorCode.IVASrvErr_dst_error_relation): 403,
    int(ErrorCode.IVTermErr_msg_calling_all_chn_busy): 503,
    int(ErrorCode.IVTermErr_msg_user_cmd_param_error): 400,
    int(ErrorCode.IVPlayerError_InvalidParameter): 400,
    int(ErrorCode.IVPlayerError_AVInformationAbnormal): 400,
}


def _problem(status: int, code: int, msg: str) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=status, headers=CORS)


def _signature(request: Request, tid: str, session: str, access_id: str) -> str:
    key: bytes = request.app.state.url_secret
    message = f"whep:{tid}:{session}:{access_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


@router.options("/whep/{tid}", include_in_schema=False)
@router.options("/whep/{tid}/{session}/{sig}", include_in_schema=False)
async def preflight(tid: str, session: str = "", sig: str = "") -> Response:
    return Response(status_code=204, headers=CORS)


@router.post("/whep/{tid}", summary="WHEP: watch a device live (SDP offer in, answer out)")
async def offer(request: Request, tid: str) -> Response:
    """A complete SDP offer (ICE candidates gathered) to receive ``tid``'s video and
    audio; ``source`` (an NVR channel) and ``definition`` (low, mid, high) in the query."""
    try:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/sdp":
            raise Refused(
                415,
                ErrorCode.IVTermErr_msg_user_cmd_param_error,
                "send Content-Type: application/sdp",
            )
        access_id, role = await app_access(request, tid)
        sdp = (await read_capped(request, MAX_SDP)).decode("utf-8", "replace")
        definition = request.query_params.get("definition", "low")
        if definition not in DEFINITIONS:
            raise Refused(
                400, ErrorCode.IVPlayerError_InvalidParameter, "definition: low, mid or high"
            )
        if not sdp.startswith("v=0"):
            raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "not an SDP offer")
    except Refused as exc:
        return _problem(exc.status, exc.code, exc.msg)
    link = request.app.state.link
    body: dict[str, Any] = {
        "sdp": sdp,
        "kind": "monitor",
        "source": request.query_params.get("source", ""),
        "definition": definition,
        "from": access_id,
        "role": role,
        "ice_servers": ice_servers(link.settings, tid, now=link.now()),
    }
    outcome = await link.hub.ask(tid, "media.offer", body, link.settings.device_timeout)
    if outcome.code:
        return _problem(STATUS.get(outcome.code, 502), outcome.code, outcome.msg or "refused")
    answer = outcome.data or {}
    session = str(answer.get("session", ""))
    location = f"/whep/{tid}/{session}/{_signature(request, tid, session, access_id)}"
    log.info("WHEP session %s of %s for %s", session, tid, access_id)
    return Response(
        str(answer.get("sdp", "")),
        status_code=201,
        media_type="application/sdp",
        headers={**CORS, "Location": location, "ETag": f'"{session}"'},
    )


@router.patch("/whep/{tid}/{session}/{sig}", include_in_schema=False)
async def trickle(tid: str, session: str, sig: str) -> Response:
    """Trickle ICE is not taken: offers come with their candidates."""
    return Response(status_code=405, headers={**CORS, "Allow": "DELETE"})


@router.delete("/whep/{tid}/{session}/{sig}", summary="WHEP: end a session")
async def end(request: Request, tid: str, session: str, sig: str) -> Response:
    try:
        access_id, _ = await app_access(request, tid)
    except Refused as exc:
        return _problem(exc.status, exc.code, exc.msg)
    if not hmac.compare_digest(sig, _signature(request, tid, session, access_id)):
        return _problem(404, int(ErrorCode.IVTermErr_msg_user_cmd_param_error), "no such session")
    link = request.app.state.link
    outcome = await link.hub.ask(
        tid,
        "media.close",
        {"session": int(session) if session.isdigit() else -1, "from": access_id},
        link.settings.device_timeout,
    )
    if outcome.code:
        return _problem(STATUS.get(outcome.code, 502), outcome.code, outcome.msg or "refused")
    return Response(status_code=200, headers=CORS)
