"""WHEP (the IETF WebRTC-HTTP egress protocol, RFC 9725): any WHEP player (a browser, OBS,
GStreamer's whepsrc, Home Assistant) watches a camera live with a bearer token.

::

    POST /whep/<tid>?source=&definition=     Content-Type: application/sdp
    Authorization: Bearer <AccessToken>      (a user's, a device token or an anonymous one)
      -> 201 Created, the device's SDP answer, Location: /whep/<tid>/<session>/<sig>
    DELETE <Location>                        -> 200: the device ends the session
    PATCH <Location>                         -> 204: trickled ICE candidates (an SDP
                                                fragment, application/trickle-ice-sdpfrag)

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

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from iotvideo.cloud.link.hub import Outcome
from iotvideo.cloud.turn import ice_servers
from iotvideo.cloud.vas import Refused, app_access, read_capped
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.media import DEFINITIONS

__all__ = ["router"]

log = logging.getLogger("iotvideo.cloud.whep")

MAX_SDP = 32_000
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, ETag, Accept-Patch",
    "Access-Control-Max-Age": "600",
}
#: The device's and the cloud's codes, as HTTP statuses.
STATUS = {
    int(ErrorCode.IVASrvErr_dst_offline): 409,
    int(ErrorCode.IVASrvErr_dst_notexsit): 404,
    int(ErrorCode.IVASrvErr_dst_error_relation): 403,
    int(ErrorCode.IVTermErr_msg_calling_all_chn_busy): 503,
    int(ErrorCode.IVAckErr_DeviceBusy): 503,
    int(ErrorCode.IVTermErr_msg_calling_no_srv_addr): 503,
    int(ErrorCode.IVAckErr_NoResponse): 504,
    int(ErrorCode.IVTermErr_msg_user_cmd_param_error): 400,
    int(ErrorCode.IVPlayerError_InvalidParameter): 400,
    int(ErrorCode.IVPlayerError_AVInformationAbnormal): 400,
}


def _cors_on_errors(request: Request) -> None:
    """The cloud's own error answers (an outage: cloud/http_errors.py) carry CORS too."""
    request.state.error_headers = CORS


router = APIRouter(dependencies=[Depends(_cors_on_errors)])


async def _ask(request: Request, tid: str, op: str, body: dict[str, Any]) -> Outcome:
    """The device's answer to ``op``; the cloud's own refusals (offline, busy, an outage)
    as an answer with their code, so every path ends in a problem response."""
    link = request.app.state.link
    try:
        outcome: Outcome = await link.hub.ask(tid, op, body, link.settings.device_timeout)
    except IVError as exc:
        return Outcome(int(exc.code), msg=exc.message)
    return outcome


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
    """An SDP offer to receive ``tid``'s video and audio, with its ICE candidates or
    without them (trickle them with PATCH); ``source`` (an NVR channel) and ``definition``
    (low, mid, high) in the query."""
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
    outcome = await _ask(request, tid, "media.offer", body)
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
        headers={
            **CORS,
            "Location": location,
            "ETag": f'"{session}"',
            "Accept-Patch": "application/trickle-ice-sdpfrag",
        },
    )


#: An SDP fragment of trickled candidates is small: a few lines per candidate.
MAX_FRAGMENT = 16_000
MAX_CANDIDATES = 64


def fragment_candidates(text: str) -> list[tuple[str, str | None, int]]:
    """The candidates of an ``application/trickle-ice-sdpfrag`` body (RFC 8840) as
    ``(candidate line, mid, m-line index)``; ``a=end-of-candidates`` gives ``""``."""
    found: list[tuple[str, str | None, int]] = []
    mid: str | None = None
    index = -1
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            index += 1
            mid = None
        elif line.startswith("a=mid:"):
            mid = line.removeprefix("a=mid:").strip()
        elif line.startswith("a=candidate:"):
            found.append((line.removeprefix("a="), mid, max(index, 0)))
        elif line == "a=end-of-candidates":
            found.append(("", mid, max(index, 0)))
    return found


async def _session_of(request: Request, tid: str, session: str, sig: str) -> str:
    """The asker's access id when it may reach ``tid`` and the URL is this session's."""
    access_id, _ = await app_access(request, tid)
    if not hmac.compare_digest(sig, _signature(request, tid, session, access_id)):
        raise Refused(404, ErrorCode.IVTermErr_msg_user_cmd_param_error, "no such session")
    return access_id


@router.patch("/whep/{tid}/{session}/{sig}", summary="WHEP: trickle ICE candidates")
async def trickle(request: Request, tid: str, session: str, sig: str) -> Response:
    """Candidates gathered after the offer was posted, as an SDP fragment
    (``Content-Type: application/trickle-ice-sdpfrag``; ``a=end-of-candidates`` ends
    them): relayed to the device, 204. ICE restarts are not offered (a fragment asking
    for one is answered with its candidates taken for the running session)."""
    try:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/trickle-ice-sdpfrag":
            raise Refused(
                415,
                ErrorCode.IVTermErr_msg_user_cmd_param_error,
                "send Content-Type: application/trickle-ice-sdpfrag",
            )
        access_id = await _session_of(request, tid, session, sig)
        text = (await read_capped(request, MAX_FRAGMENT)).decode("utf-8", "replace")
        candidates = fragment_candidates(text)
        if len(candidates) > MAX_CANDIDATES:
            raise Refused(
                400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "too many candidates at once"
            )
    except Refused as exc:
        return _problem(exc.status, exc.code, exc.msg)
    number = int(session) if session.isdigit() else -1
    for line, mid, index in candidates:
        body = {"session": number, "from": access_id, "candidate": line, "index": index}
        if mid is not None:
            body["mid"] = mid
        outcome = await _ask(request, tid, "media.candidate", body)
        if outcome.code:
            return _problem(STATUS.get(outcome.code, 502), outcome.code, outcome.msg or "refused")
    return Response(status_code=204, headers=CORS)


@router.delete("/whep/{tid}/{session}/{sig}", summary="WHEP: end a session")
async def end(request: Request, tid: str, session: str, sig: str) -> Response:
    try:
        access_id = await _session_of(request, tid, session, sig)
    except Refused as exc:
        return _problem(exc.status, exc.code, exc.msg)
    outcome = await _ask(
        request,
        tid,
        "media.close",
        {"session": int(session) if session.isdigit() else -1, "from": access_id},
    )
    if outcome.code:
        return _problem(STATUS.get(outcome.code, 502), outcome.code, outcome.msg or "refused")
    return Response(status_code=200, headers=CORS)
