"""Value-added services over HTTP: device uploads of cloud recordings, and the seed's
VAS interfaces for apps (service detail, days with video, recorded ranges, the HLS play
address), the HLS playlists and segments themselves.

Apps authenticate with ``Authorization: Bearer <AccessToken>``: a user token whose user
is bound to the device (owner or guest), or a token that grants the device (CreateBinding's,
CreateDevToken's, CreateAnonymousAccessToken's: the seed's "anonymous access"). Answers are
the seed's ``{"code": 0, "msg": "Success", "data": {...}}``; refusals carry the seed's
codes (20010 bad token, 8002 no such device, 8003 no relation, 20143 bad parameter).

Devices sign their uploads (:mod:`iotvideo.protocol.vas`), or send a segment with an
upload credential from CreateUploadTest (:mod:`iotvideo.cloud.uploads`). Playlists and segments are
fetched by signed URLs that expire (``url_ttl``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import av
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from iotvideo.cloud import ids
from iotvideo.cloud.access import device_role, find_token
from iotvideo.cloud.db.tables import (
    AnyRow,
    cloud_events,
    cloud_segments,
    devices,
)
from iotvideo.cloud.storage import ServiceStatus, channel_view
from iotvideo.cloud.uploads import check_upload_token
from iotvideo.cloud.webhooks import enqueue
from iotvideo.media.recorder import concat_mp4, encode_picture
from iotvideo.protocol import link
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.vas import (
    build_m3u8,
    merge_ranges,
    sign_path,
    upload_message,
    verify_path,
)

__all__ = ["router", "url_secret"]

#: Seconds the picture URL of a notification stays valid (a week).
WEBHOOK_URL_TTL = 7 * 86_400

log = logging.getLogger("iotvideo.cloud.vas")

router = APIRouter(prefix="/vas")

DAY = 86_400
#: Largest segment accepted (bytes) and longest (ms).
MAX_SEGMENT_BYTES = 32 << 20
MAX_SEGMENT_MS = 120_000
#: Largest number a query parameter may hold (UNIX milliseconds fit with room to spare).
MAX_NUMBER = 1 << 53
#: Largest JSON body an app may send (deleteEvents with 100 ids needs under 5 KB).
MAX_JSON_BYTES = 64 << 10
#: The most a play address covers; a longer range is played in several requests.
MAX_PLAY_MS = DAY * 1000
#: The longest range one MP4 download covers (seconds).
MAX_MP4_SECONDS = 3600


class Refused(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _answer(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"code": 0, "msg": "Success", "data": data})


def _refusal(exc: Refused) -> JSONResponse:
    return JSONResponse({"code": exc.code, "msg": exc.msg}, status_code=exc.status)


def url_secret(data: Path, configured: str | None) -> bytes:
    """The key of signed URLs: the setting, else one kept in the data directory (shared
    by instances sharing it)."""
    if configured:
        return configured.encode()
    path = data / "url.key"
    with contextlib.suppress(FileExistsError):  # readable by the cloud's user alone
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _ctx(request: Request) -> Any:
    return request.app.state


def _public_base(request: Request) -> str:
    """The base of URLs handed to clients: the configured public URL, else the request's."""
    configured = _ctx(request).settings.public_url
    return str(configured or request.base_url).rstrip("/")


def _now(request: Request) -> int:
    return int(request.app.state.link.now())


def _int(request: Request, name: str, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, f"{name} is missing")
        return default
    try:
        value = int(float(raw))
    except (ValueError, OverflowError):  # "x", "nan", "1e400"
        value = None
    if value is None or abs(value) > MAX_NUMBER:
        raise Refused(
            400,
            ErrorCode.IVTermErr_msg_user_cmd_param_error,
            f"{name} must be a number up to {MAX_NUMBER}",
        )
    return value


# Device uploads


@router.post("/device/segment")
async def upload_segment(request: Request) -> Response:
    """A device's recorded segment: ``?chn=&start=&end=`` (UNIX ms), the MPEG-TS as body.
    Uploading the same segment again is harmless (the first copy stays)."""
    try:
        tid = await _device(request, cap=MAX_SEGMENT_BYTES)
        chn, start, end = _int(request, "chn", 0), _int(request, "start"), _int(request, "end")
        if not 0 < end - start <= MAX_SEGMENT_MS:
            raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "bad start/end")
        body = request.state.body
        state = _ctx(request)
        now = await _service_in_use(request, tid, chn)
        folder = state.settings.data / "vas" / tid / str(chn)
        path = folder / f"{start}.ts"
        await asyncio.to_thread(_write, path, body)
        try:
            async with state.db.begin() as conn:
                await conn.execute(
                    insert(cloud_segments).values(
                        tid=tid,
                        chn_num=chn,
                        start_ms=start,
                        end_ms=end,
                        size=len(body),
                        path=str(path.relative_to(state.settings.data)),
                        created_at=now,
                    )
                )
        except IntegrityError:
            return _answer({"duplicate": True})
        return _answer({"duplicate": False})
    except Refused as exc:
        return _refusal(exc)


async def _service_in_use(request: Request, tid: str, chn: int) -> int:
    """Now (UNIX seconds), when the channel's cloud-storage service is in use; else 403."""
    now = _now(request)
    async with _ctx(request).db.read() as conn:
        view = await channel_view(conn, tid, chn, now)
    if view.status is not ServiceStatus.IN_USE:
        raise Refused(
            403, ErrorCode.IVASrvErr_dst_error_relation, "no cloud-storage service in use"
        )
    return now


def _write(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_suffix(".part")
        try:
            tmp.write_bytes(body)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk leaves no partial file behind
            raise


async def _device(request: Request, *, cap: int, allow_empty: bool = False) -> str:
    """The signing device's Tid; its body, at most ``cap`` bytes, in request.state.body.

    Everything the headers can prove is checked before the body is read (an unknown
    device, a stale time, a declared length over ``cap``), and the body is read only up
    to ``cap``: an unsigned or oversized upload costs the cloud nothing much.
    """
    bearer = request.headers.get("authorization", "")
    if bearer.startswith("Bearer ut1.") and not allow_empty:
        return await _credential_upload(request, bearer.removeprefix("Bearer "), cap)
    tid = request.headers.get("x-iv-tid", "")
    signature = request.headers.get("x-iv-signature", "")
    try:
        when = int(request.headers.get("x-iv-time", ""))
    except ValueError:
        raise Refused(401, ErrorCode.IVTermErr_msg_calling_check_token_error, "unsigned") from None
    if not tid or not signature:
        raise Refused(401, ErrorCode.IVTermErr_msg_calling_check_token_error, "unsigned")
    if abs(_now(request) - when) > _ctx(request).settings.signature_max_skew:
        raise Refused(401, ErrorCode.IVTermErr_msg_calling_check_token_error, "clock skew")
    _declared_within(request, cap)
    async with _ctx(request).db.read() as conn:
        key = await conn.scalar(select(devices.c.public_key).where(devices.c.tid == tid))
    if key is None:
        raise Refused(401, ErrorCode.IVTermErr_msg_calling_check_token_error, "bad signature")
    body = await _body(request, cap, allow_empty=allow_empty)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not link.verify(key, upload_message(tid, request.method, target, body, when), signature):
        raise Refused(401, ErrorCode.IVTermErr_msg_calling_check_token_error, "bad signature")
    request.state.body = body
    return tid


async def _credential_upload(request: Request, token: str, cap: int) -> str:
    """The Tid of an upload sent with a CreateUploadTest credential (its body read as
    :func:`_device` reads one), or 401."""
    tid = check_upload_token(_ctx(request).url_secret, token, _now(request))
    if tid is None:
        raise Refused(
            401,
            ErrorCode.IVTermErr_msg_calling_check_token_error,
            "the upload credential is malformed or expired; renew it with RenewUploadTest",
        )
    _declared_within(request, cap)
    async with _ctx(request).db.read() as conn:
        known = await conn.scalar(select(devices.c.tid).where(devices.c.tid == tid))
    if known is None:
        raise Refused(404, ErrorCode.IVASrvErr_dst_notexsit, "the device no longer exists")
    request.state.body = await _body(request, cap, allow_empty=False)
    return tid


async def _body(request: Request, cap: int, *, allow_empty: bool) -> bytes:
    """An upload's body, at most ``cap`` bytes; 400 when empty and it may not be."""
    body = await read_capped(request, cap)
    if not (body or allow_empty):
        raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "empty body")
    return body


def _declared_within(request: Request, cap: int) -> None:
    try:
        declared = int(request.headers.get("content-length") or 0)
    except ValueError:
        declared = cap + 1
    if declared > cap:
        raise Refused(413, ErrorCode.IVTermErr_msg_user_cmd_param_error, "body too large")


async def read_capped(request: Request, cap: int) -> bytes:
    """The request's body, refused (413) as soon as it passes ``cap`` bytes (chunked
    bodies declare no length)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise Refused(413, ErrorCode.IVTermErr_msg_user_cmd_param_error, "body too large")
            chunks.append(chunk)
    except ClientDisconnect:  # it went away mid-upload (and retries): nothing is stored
        raise Refused(
            400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "the upload was cut off"
        ) from None
    return b"".join(chunks)


# Apps


async def app_token(request: Request, conn: AsyncConnection | None = None) -> AnyRow:
    """The live access token of the request's ``Authorization: Bearer``, or 401."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if conn is None:
        async with _ctx(request).db.read() as own:
            row = await find_token(own, token, now=_now(request))
    else:
        row = await find_token(conn, token, now=_now(request))
    if row is None:
        raise Refused(
            401,
            ErrorCode.IVTermErr_msg_calling_check_token_error,
            "the access token is unknown, expired or revoked",
        )
    return row


async def _app_grant(request: Request, tid: str) -> str:
    """What the request's bearer token may do with ``tid``: ``owner`` or ``guest`` (a
    binding), ``visitor`` (a device or anonymous token for it); refuses anything else."""
    return (await app_access(request, tid))[1]


async def app_access(request: Request, tid: str) -> tuple[str, str]:
    """(access id, role) of the request's bearer token for ``tid``: 401 unknown token,
    404 (8002) no such device, 403 (8003) no relation. Also used by WHEP."""
    state = _ctx(request)
    async with state.db.read() as conn:
        row = await app_token(request, conn)
        try:
            return str(row.access_id), await device_role(conn, str(row.access_id), tid, row)
        except IVError as exc:
            status = 404 if exc.code == ErrorCode.IVASrvErr_dst_notexsit else 403
            raise Refused(status, int(exc.code), exc.message) from None


async def _device_and_channel(request: Request) -> tuple[str, int]:
    tid = request.query_params.get("deviceId", "")
    if not tid:
        raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "deviceId is missing")
    chn = _int(request, "sourceId", 0)
    await _app_grant(request, tid)
    return tid, chn


@router.get("/service")
async def service_detail(request: Request) -> Response:
    """getServiceDetailInfo: the channel's service status and current order."""
    try:
        tid, chn = await _device_and_channel(request)
        async with _ctx(request).db.read() as conn:
            view = await channel_view(conn, tid, chn, _now(request))
        current = view.current
        return _answer(
            {
                "status": int(view.status),
                "startTime": view.start_time,
                "endTime": view.end_time,
                "curOrderPkgType": int(view.kind),
                "curOrderStorageDays": view.storage_days,
                "curOrderStartTime": current.start_time if current is not None else 0,
                "curOrderEndTime": current.end_time if current is not None else 0,
                "playbackStartTime": view.playback_start,
                "sourceId": chn,
            }
        )
    except Refused as exc:
        return _refusal(exc)


async def _pieces(
    request: Request, tid: str, chn: int, start_ms: int, end_ms: int, *, paths: bool = False
) -> list[Any]:
    """The channel's segments overlapping [start, end) that the service still shows:
    (segment id, start ms, end ms) rows, and each one's file with ``paths``."""
    state = _ctx(request)
    now = _now(request)
    async with state.db.read() as conn:
        view = await channel_view(conn, tid, chn, now)
        if view.status is ServiceStatus.EXPIRED:
            return []
        lower = max(start_ms, view.playback_start * 1000)
        columns = [cloud_segments.c.segment_id, cloud_segments.c.start_ms, cloud_segments.c.end_ms]
        if paths:
            columns.append(cloud_segments.c.path)
        rows = await conn.execute(
            select(*columns)
            .where(
                cloud_segments.c.tid == tid,
                cloud_segments.c.chn_num == chn,
                cloud_segments.c.end_ms > lower,
                cloud_segments.c.start_ms < end_ms,
            )
            .order_by(cloud_segments.c.start_ms)
        )
        return list(rows)


@router.get("/dates")
async def video_dates(request: Request) -> Response:
    """getVideoDateList: the start (UTC seconds) of each local day with video."""
    try:
        tid, chn = await _device_and_channel(request)
        offset = _int(request, "timezone", 0)
        now = _now(request)
        # The database groups the segments by local day: a month of 10 s segments is
        # 260,000 rows, the answer at most a few hundred.
        day = (cloud_segments.c.start_ms // 1000 + offset) // DAY
        async with _ctx(request).db.read() as conn:
            found = await conn.scalars(
                select(day)
                .where(
                    cloud_segments.c.tid == tid,
                    cloud_segments.c.chn_num == chn,
                    cloud_segments.c.start_ms < (now + DAY) * 1000,
                )
                .group_by(day)
            )
            days = sorted({int(d) * DAY - offset for d in found})
        return _answer({"list": days})
    except Refused as exc:
        return _refusal(exc)


@router.get("/playlist")
async def play_list(request: Request) -> Response:
    """getVideoPlayList: the recorded ranges in [startTime, endTime] (one day at most)."""
    try:
        tid, chn = await _device_and_channel(request)
        start, end = _int(request, "startTime"), _int(request, "endTime")
        if end <= start:
            raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "endTime <= startTime")
        end = min(end, start + DAY)
        rows = await _pieces(request, tid, chn, start * 1000, end * 1000)
        ranges = merge_ranges(
            (max(r.start_ms, start * 1000), min(r.end_ms, end * 1000)) for r in rows
        )
        return _answer(
            {"list": [{"start": r.start_ms // 1000, "end": -(-r.end_ms // 1000)} for r in ranges]}
        )
    except Refused as exc:
        return _refusal(exc)


@router.get("/address")
async def play_address(request: Request) -> Response:
    """getVideoPlayAddress: an m3u8 URL for [startTime, endTime] (0: up to the latest).
    One address covers a day at most: ``endflag`` false means ask again from ``endTime``."""
    try:
        tid, chn = await _device_and_channel(request)
        now = _now(request)
        start = _int(request, "startTime")
        asked_end = _int(request, "endTime", 0)
        end = asked_end if asked_end > 0 else now
        if end <= start:
            raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "endTime <= startTime")
        capped = min(end, start + MAX_PLAY_MS // 1000)
        state = _ctx(request)
        expires = now + state.settings.url_ttl
        path = f"/vas/hls/{tid}/{chn}/{start}-{capped}.m3u8"
        sig = sign_path(state.url_secret, path, expires)
        base = _public_base(request)
        return _answer(
            {
                "url": f"{base}/vas/hls/{expires}/{sig}/{tid}/{chn}/{start}-{capped}.m3u8",
                "startTime": start,
                "endTime": capped,
                "endflag": capped >= end,
            }
        )
    except Refused as exc:
        return _refusal(exc)


def _signed(request: Request) -> None:
    """The request's URL is signed (``?exp=&sig=``) and not expired."""
    try:
        expires = int(request.query_params.get("exp", ""))
    except ValueError:
        expires = 0
    _check(request, request.url.path, expires, request.query_params.get("sig", ""))


def _check(request: Request, path: str, expires: int, signature: str) -> None:
    if not verify_path(_ctx(request).url_secret, path, expires, signature, _now(request)):
        raise Refused(403, ErrorCode.IVTermErr_msg_calling_check_token_error, "bad or expired URL")


@router.get("/hls/{exp}/{sig}/{tid}/{chn}/{window}.m3u8")
async def hls_playlist(
    request: Request, exp: int, sig: str, tid: str, chn: int, window: str
) -> Response:
    """The HLS playlist of a play address, discontinuities at gaps. The signature is in
    the path, so the segment URLs are plain relative ones (``<window>/<segment>.ts``)
    that carry it along: one HMAC per playlist, and ~30 bytes per segment line."""
    try:
        _check(request, f"/vas/hls/{tid}/{chn}/{window}.m3u8", exp, sig)
        start, end = _window(window)
        rows = await _pieces(request, tid, chn, start * 1000, end * 1000)
        # Rows by position, plain tuples: attribute access per row costs more than the rest.
        segments = [(start_ms, end_ms, f"{window}/{sid}.ts") for sid, start_ms, end_ms in rows]
        body = build_m3u8(segments, complete=end <= _now(request))
        return Response(body, media_type="application/vnd.apple.mpegurl")
    except Refused as exc:
        return _refusal(exc)


@router.get("/hls/{exp}/{sig}/{tid}/{chn}/{window}.mp4")
async def mp4_export(
    request: Request, exp: int, sig: str, tid: str, chn: int, window: str
) -> Response:
    """A play address's range as one MP4 file to download (the playlist's signature and
    window, ``.mp4`` for ``.m3u8``): the segments remuxed, nothing re-encoded; a gap in
    the recording is a jump in time. At most an hour per file."""
    try:
        _check(request, f"/vas/hls/{tid}/{chn}/{window}.m3u8", exp, sig)
        start, end = _window(window)
        if end - start > MAX_MP4_SECONDS:
            raise Refused(
                400,
                ErrorCode.IVTermErr_msg_user_cmd_param_error,
                f"an MP4 covers at most {MAX_MP4_SECONDS // 60} minutes: ask for a shorter range",
            )
        state = _ctx(request)
        rows = await _pieces(request, tid, chn, start * 1000, end * 1000, paths=True)
        listed = [(row[1], state.settings.data / row[3]) for row in rows]
        pieces = await asyncio.to_thread(lambda: [(t, p) for t, p in listed if p.exists()])
        if not pieces:
            raise Refused(404, ErrorCode.IVTermErr_msg_find_record_file_fail, "nothing recorded")
        folder = state.settings.data / "tmp"
        folder.mkdir(exist_ok=True)
        out = folder / f"{secrets.token_hex(8)}.mp4"
        try:
            await asyncio.to_thread(concat_mp4, pieces, out)
        except av.FFmpegError as exc:
            out.unlink(missing_ok=True)
            log.warning("MP4 of %s %s failed: %s", tid, window, exc)
            raise Refused(
                500, ErrorCode.IVDownloadError_FileOpenFailed, "a recorded segment is unreadable"
            ) from None
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        return FileResponse(
            out,
            media_type="video/mp4",
            filename=f"{tid}-{chn}-{start}.mp4",
            background=BackgroundTask(out.unlink, missing_ok=True),
        )
    except Refused as exc:
        return _refusal(exc)


def _window(window: str) -> tuple[int, int]:
    try:
        start, end = (int(v) for v in window.split("-"))
    except ValueError:
        raise Refused(404, ErrorCode.IVTermErr_msg_user_cmd_param_error, "bad window") from None
    return start, end


@router.get("/hls/{exp}/{sig}/{tid}/{chn}/{window}/{segment_id}.ts")
async def hls_segment(
    request: Request, exp: int, sig: str, tid: str, chn: int, window: str, segment_id: int
) -> Response:
    """A segment of a signed playlist (the playlist's signature, the playlist's window)."""
    try:
        _check(request, f"/vas/hls/{tid}/{chn}/{window}.m3u8", exp, sig)
        start, end = _window(window)
        state = _ctx(request)
        async with state.db.read() as conn:
            rel = await conn.scalar(
                select(cloud_segments.c.path).where(
                    cloud_segments.c.segment_id == segment_id,
                    cloud_segments.c.tid == tid,
                    cloud_segments.c.chn_num == chn,
                    cloud_segments.c.end_ms > start * 1000,
                    cloud_segments.c.start_ms < end * 1000,
                )
            )
        path = state.settings.data / rel if rel else None
        if path is None or not path.exists():
            raise Refused(404, ErrorCode.IVTermErr_msg_find_record_file_fail, "no such segment")
        return FileResponse(path, media_type="video/mp2t")
    except Refused as exc:
        return _refusal(exc)


# Events

#: Width of event thumbnails (pixels).
THUMB_WIDTH = 160
MAX_PICTURE_BYTES = 4 << 20


def _thumbnail(picture: bytes) -> bytes:
    """A small JPEG of ``picture`` (CPU work: run it off the event loop)."""
    codec: Any = av.CodecContext.create("mjpeg", "r")
    frames = list(codec.decode(av.Packet(picture)))
    if not frames:
        raise ValueError("not a JPEG")
    frame = frames[0]
    height = max(2, round(frame.height * THUMB_WIDTH / frame.width / 2) * 2)
    small = frame.reformat(width=THUMB_WIDTH, height=height)
    return encode_picture(small, "jpeg")


@router.post("/device/event")
async def upload_event(request: Request) -> Response:
    """A device event: ``?chn=&alarmType=&firstAlarmType=&start=&end=`` (UNIX seconds),
    its JPEG picture as the body (may be empty). ``id=`` (the device's own) makes a
    repeated upload harmless."""
    try:
        tid = await _device(request, cap=MAX_PICTURE_BYTES, allow_empty=True)
        chn = _int(request, "chn", 0)
        alarm_type, first = _int(request, "alarmType"), _int(request, "firstAlarmType", 0)
        start, end = _int(request, "start"), _int(request, "end", 0) or _int(request, "start")
        if alarm_type <= 0 or alarm_type >= 1 << 32 or end < start:
            raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "bad event fields")
        event_id = request.query_params.get("id") or ids.alarm_id()
        if not event_id.isalnum() or not event_id.isascii() or len(event_id) > 32:
            raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "bad id")
        body = request.state.body
        state = _ctx(request)
        now = await _service_in_use(request, tid, chn)
        small = None
        if body:
            try:
                small = await asyncio.to_thread(_thumbnail, body)
            except (ValueError, av.FFmpegError):
                raise Refused(
                    400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "the picture is no JPEG"
                ) from None
        folder = state.settings.data / "events" / tid
        picture = f"events/{tid}/{event_id}.jpg" if body else None
        thumb = f"events/{tid}/{event_id}.thumb.jpg" if body else None
        try:
            # The row first, the files inside its transaction: a duplicate writes nothing,
            # and a failed commit leaves no file without a row.
            async with state.db.begin() as conn:
                await conn.execute(
                    insert(cloud_events).values(
                        alarm_id=event_id,
                        tid=tid,
                        chn_num=chn,
                        alarm_type=alarm_type,
                        first_alarm_type=first or (alarm_type & -alarm_type),
                        start_time=start,
                        end_time=end,
                        picture=picture,
                        thumb=thumb,
                        created_at=now,
                    )
                )
                if body and small is not None:
                    await asyncio.to_thread(_write, folder / f"{event_id}.jpg", body)
                    await asyncio.to_thread(_write, folder / f"{event_id}.thumb.jpg", small)
                image = ""
                if picture:
                    expires = now + WEBHOOK_URL_TTL
                    path = f"/vas/img/{tid}/{event_id}.jpg"
                    sig = sign_path(state.url_secret, path, expires)
                    image = f"{_public_base(request)}{path}?exp={expires}&sig={sig}"
                notice = {
                    "chn": chn,
                    "alarmId": event_id,
                    "alarmType": alarm_type,
                    "start": start,
                    "end": end,
                    "imgUrl": image,
                }
                await enqueue(conn, tid, "vas.event", notice, now=now)
        except IntegrityError:
            await _extend_event(state.db, tid, event_id, end, alarm_type)
            return _answer({"alarmId": event_id, "duplicate": True})
        except BaseException:
            for rel in (picture, thumb):
                if rel:
                    await asyncio.to_thread((state.settings.data / rel).unlink, missing_ok=True)
            raise
        # Apps watching the device learn of it at once (a console's event feed); the
        # picture's URL comes with the event list (signed for the asker).
        live = {k: v for k, v in notice.items() if k != "imgUrl"}
        with contextlib.suppress(IVError):  # the bus is down: the list still has it
            await state.link.hub.push(tid, "vas.event", {**live, "picture": bool(picture)})
        return _answer({"alarmId": event_id, "duplicate": False})
    except Refused as exc:
        return _refusal(exc)


async def _extend_event(db: Any, tid: str, event_id: str, end: int, bits: int) -> None:
    """A repeat of a stored event: its end moves later and its bits are added (a device
    raises an event when it starts and sends it again when it ends); nothing else."""
    async with db.begin() as conn:
        await conn.execute(
            update(cloud_events)
            .where(cloud_events.c.tid == tid, cloud_events.c.alarm_id == event_id)
            .values(
                end_time=func.max(cloud_events.c.end_time, end)
                if conn.dialect.name == "sqlite"
                else func.greatest(cloud_events.c.end_time, end),
                alarm_type=cloud_events.c.alarm_type.op("|")(bits),
            )
        )


def _masks(request: Request) -> list[int]:
    raw = request.query_params.get("typeMasks", "")
    try:
        masks = [int(m) for m in raw.replace("[", "").replace("]", "").split(",") if m.strip()]
    except ValueError:
        raise Refused(
            400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "typeMasks: numbers, comma-separated"
        ) from None
    if any(not 0 <= m < 1 << 32 for m in masks):
        raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "typeMasks: 32-bit")
    return [m for m in masks if m]


@router.get("/events")
async def event_list(request: Request) -> Response:
    """getEventList: events with start in [startTime, endTime), newest first, pageSize of
    them (1..50); the next page: endTime = the last event's startTime.

    A page never ends inside a second: when the events of its last second go on past
    pageSize, the page takes them all (so the next page, below that second, loses none)."""
    try:
        tid, chn = await _device_and_channel(request)
        start, end = _int(request, "startTime"), _int(request, "endTime")
        size = _int(request, "pageSize", 50)
        if not 1 <= size <= 50:
            raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "pageSize: 1..50")
        masks = _masks(request)
        valid_only = request.query_params.get("validCloudStorage", "").lower() in ("1", "true")
        state = _ctx(request)
        now = _now(request)
        async with state.db.read() as conn:
            view = await channel_view(conn, tid, chn, now)
            where = [
                cloud_events.c.tid == tid,
                cloud_events.c.chn_num == chn,
                cloud_events.c.start_time >= start,
                cloud_events.c.start_time < end,
            ]
            where += [cloud_events.c.alarm_type.op("&")(m) != 0 for m in masks]
            if valid_only:
                if view.status is ServiceStatus.EXPIRED:
                    where.append(cloud_events.c.start_time < 0)
                else:
                    where.append(cloud_events.c.start_time >= view.playback_start)
            newest_first = (cloud_events.c.start_time.desc(), cloud_events.c.alarm_id.desc())
            rows = list(
                await conn.execute(
                    select(cloud_events).where(*where).order_by(*newest_first).limit(size + 1)
                )
            )
            page_end = len(rows) <= size
            if not page_end and rows[size].start_time == rows[size - 1].start_time:
                last = rows[size - 1].start_time
                rows = rows[:size] + [
                    r
                    for r in await conn.execute(
                        select(cloud_events)
                        .where(*where, cloud_events.c.start_time == last)
                        .order_by(*newest_first)
                    )
                    if r.alarm_id not in {x.alarm_id for x in rows[:size]}
                ]
                page_end = (
                    await conn.scalar(
                        select(cloud_events.c.alarm_id)
                        .where(*where, cloud_events.c.start_time < last)
                        .limit(1)
                    )
                    is None
                )
            else:
                rows = rows[:size]
        expires = now + state.settings.url_ttl
        items = []
        for r in rows:
            suffix = ""
            if r.picture:
                picture = f"{tid}/{r.alarm_id}.jpg"
                sig = sign_path(state.url_secret, f"/vas/img/{picture}", expires)
                suffix = f"{picture}?exp={expires}&sig={sig}"
            items.append(
                {
                    "alarmId": r.alarm_id,
                    "firstAlarmType": r.first_alarm_type,
                    "alarmType": r.alarm_type,
                    "startTime": r.start_time,
                    "endTime": r.end_time,
                    "imgUrlSuffix": suffix,
                }
            )
        base = _public_base(request)
        return _answer(
            {
                "imgUrlPrefix": f"{base}/vas/img/",
                "thumbUrlSuffix": "&thumb=1",
                "list": items,
                "validVideoStartTime": view.playback_start
                if view.status is not ServiceStatus.EXPIRED
                else 0,
                "pageEnd": page_end,
            }
        )
    except Refused as exc:
        return _refusal(exc)


@router.post("/events/delete")
async def delete_events(request: Request) -> Response:
    """deleteEvents: ``{"deviceId", "eventIds": [...]}``; their pictures go too."""
    try:
        await app_token(request)  # before reading a body from anyone
        raw = await read_capped(request, MAX_JSON_BYTES)
        try:
            body = json.loads(raw)
            tid = body["deviceId"]
            wanted = body["eventIds"]
            if not isinstance(tid, str) or not isinstance(wanted, list):
                raise TypeError
            if not all(isinstance(e, str) and len(e) <= 64 for e in wanted):
                raise TypeError
        except (ValueError, KeyError, TypeError, RecursionError):
            raise Refused(
                400,
                ErrorCode.IVTermErr_msg_user_cmd_param_error,
                'send {"deviceId": "<Tid>", "eventIds": ["<id>", ...]}',
            ) from None
        if not 1 <= len(wanted) <= 100:
            raise Refused(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, "1..100 eventIds")
        if await _app_grant(request, tid) != "owner":
            raise Refused(
                403, ErrorCode.IVASrvErr_dst_error_relation, "only the owner may delete events"
            )
        state = _ctx(request)
        async with state.db.begin() as conn:
            rows = list(
                await conn.execute(
                    select(
                        cloud_events.c.alarm_id, cloud_events.c.picture, cloud_events.c.thumb
                    ).where(cloud_events.c.tid == tid, cloud_events.c.alarm_id.in_(wanted))
                )
            )
            await conn.execute(
                delete(cloud_events).where(
                    cloud_events.c.tid == tid, cloud_events.c.alarm_id.in_(wanted)
                )
            )
        for r in rows:
            for rel in (r.picture, r.thumb):
                if rel:
                    await asyncio.to_thread((state.settings.data / rel).unlink, missing_ok=True)
        return _answer({"deleted": [r.alarm_id for r in rows]})
    except Refused as exc:
        return _refusal(exc)


@router.get("/img/{tid}/{alarm_id}.jpg")
async def event_picture(request: Request, tid: str, alarm_id: str) -> Response:
    """An event's picture (``&thumb=1``: its thumbnail), by a signed URL."""
    try:
        _signed(request)
        state = _ctx(request)
        async with state.db.read() as conn:
            row = (
                await conn.execute(
                    select(cloud_events.c.picture, cloud_events.c.thumb).where(
                        cloud_events.c.tid == tid, cloud_events.c.alarm_id == alarm_id
                    )
                )
            ).first()
        rel = (
            None
            if row is None
            else (row.thumb if request.query_params.get("thumb") else row.picture)
        )
        path = state.settings.data / rel if rel else None
        if path is None or not path.exists():
            raise Refused(404, ErrorCode.IVTermErr_msg_find_record_file_fail, "no such picture")
        return FileResponse(path, media_type="image/jpeg")
    except Refused as exc:
        return _refusal(exc)
