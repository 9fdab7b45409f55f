"""Restream: every camera an app user may watch, as RTSP, HLS and snapshot URLs.

- ``rtsp://HOST:8554/<tid>[/<sourceId>]``: H.264 as the device sent it (GStreamer's RTSP
  server, :mod:`.rtsp`);
- ``http://HOST:8556/<tid>[/<sourceId>]/index.m3u8``: HLS (:mod:`.hls`);
- ``http://HOST:8556/<tid>[/<sourceId>]/snapshot.jpg``: a still from the latest keyframe,
  decoded once however many clients ask;
- ``http://HOST:8556/metrics``: Prometheus text.

Each camera is pulled from its device once (:class:`~.feed.CameraFeed`), on its first
client, and left ``idle`` seconds after its last. Clients authenticate with a user and
password (RTSP digest; HTTP basic) or with a camera's token in the URL (``?token=``).
Nothing is served without one of them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hmac
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from iotvideo.app.player import EncodedPacket
from iotvideo.app.restream.audio import AUDIO_WAIT
from iotvideo.app.restream.feed import CameraFeed
from iotvideo.app.restream.hls import HlsSegmenter
from iotvideo.app.restream.mjpeg import BOUNDARY, MjpegSource
from iotvideo.media.h264 import H264Decoder
from iotvideo.media.recorder import encode_picture
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.stream import TicketError, verify_ticket

if TYPE_CHECKING:
    from iotvideo.app.restream.rtsp import RtspServer
    from iotvideo.app.sdk import IoTVideo

__all__ = ["Restream", "RestreamOptions"]

log = logging.getLogger("iotvideo.app.restream")

Camera = tuple[str, str]  # (tid, source): source '' is the device's first channel
#: Pages of any origin may play the HLS and show the stills (with a token in the URL:
#: basic credentials are not sent across origins).
CORS = {"Access-Control-Allow-Origin": "*"}


@dataclass
class RestreamOptions:
    """How restream serves (flags or the config file fill it)."""

    host: str = "0.0.0.0"  # noqa: S104 - served to the LAN's tools
    rtsp_port: int = 8554
    http_port: int = 8556
    #: name -> password: RTSP digest and HTTP basic, for every camera.
    users: dict[str, str] = field(default_factory=dict)
    #: tid -> token: ``?token=`` opens that camera's URLs.
    tokens: dict[str, str] = field(default_factory=dict)
    #: The devices served; None: every device the user may watch.
    devices: list[str] | None = None
    idle: float = 10.0
    definition: str = "high"
    rtsp: bool = True
    http: bool = True
    #: The cloud's URL: DescribeStream URIs (``?ticket=``) are served when it is set
    #: (checked with the key at its ``/restream/key``, pulled with the ticket itself).
    cloud: str | None = None


class Restream:
    """The restream server over an app SDK that is registered (logged in)."""

    def __init__(self, sdk: IoTVideo | None, options: RestreamOptions | None = None) -> None:
        self.sdk = sdk
        self.options = options or RestreamOptions()
        if not self.options.users and not self.options.tokens and not self.options.cloud:
            raise ValueError(
                "restream serves nothing without credentials: give a user and password "
                "(--rtsp-user, --rtsp-password-stdin) or camera tokens in the config"
            )
        if sdk is None and not self.options.cloud:
            raise ValueError("restream needs a signed-in app SDK, or the cloud's URL")
        #: The cloud's stream key (public half), for DescribeStream tickets.
        self.ticket_key: Ed25519PublicKey | None = None
        self._tickets: dict[Camera, str] = {}  # the latest valid ticket per camera
        self.feeds: dict[Camera, CameraFeed] = {}
        self.clients: dict[tuple[Camera, str], int] = {}  # (camera, protocol) -> count
        self._hls: dict[Camera, tuple[HlsSegmenter, Callable[[], None]]] = {}
        self._mjpeg: dict[Camera, MjpegSource] = {}
        self._pictures: dict[Camera, tuple[int, bytes]] = {}
        self._picture_locks: dict[Camera, asyncio.Lock] = {}
        self.rtsp: RtspServer | None = None
        self._http: Any = None
        self._http_task: asyncio.Task[None] | None = None
        self._janitor: asyncio.Task[None] | None = None
        self.http_port = self.options.http_port

    # Which cameras

    def devices(self) -> list[str]:
        """The devices served to users and camera tokens (tickets open their own)."""
        if self.options.devices is not None:
            return list(self.options.devices)
        reply = getattr(self.sdk, "login_reply", None) or {}
        return [str(t) for t in reply.get("devices", [])]

    def camera_of(
        self, path: str, query: str | None = None, protocol: str = "RTSP"
    ) -> Camera | None:
        """``/tid`` or ``/tid/N`` -> (tid, source), when tid is served (or the query
        holds a valid DescribeStream ticket for it)."""
        parts = [p for p in path.split("/") if p]
        if not 1 <= len(parts) <= 2:
            return None
        source = parts[1] if len(parts) == 2 else ""
        if source and not source.isdigit():
            return None
        camera = (parts[0], source)
        if parts[0] in self.devices() or self._ticket_for(camera, query, protocol):
            return camera
        return None

    def token_allows(self, path: str, query: str | None, protocol: str = "RTSP") -> bool:
        """Does the query open the path's camera: its token, or a DescribeStream ticket
        for it and this protocol?"""
        camera = self.camera_of(path, query, protocol)
        if camera is None or not query:
            return False
        if self._ticket_for(camera, query, protocol):
            return True
        expected = self.options.tokens.get(camera[0])
        given = parse_qs(query).get("token", [""])[0]
        return bool(expected) and hmac.compare_digest(given, str(expected))

    def _ticket_for(self, camera: Camera, query: str | None, protocol: str) -> bool:
        """A valid ticket for ``camera`` and ``protocol`` in the query (remembered as the
        camera's latest, to pull with)."""
        ticket = parse_qs(query or "").get("ticket", [""])[0]
        if not ticket or self.ticket_key is None:
            return False
        try:
            claim = verify_ticket(self.ticket_key, ticket, now=int(time.time()))
        except TicketError as exc:
            log.info("a ticket for %s/%s refused: %s", camera[0], camera[1], exc)
            return False
        if (claim.tid, claim.source, claim.protocol) != (*camera, protocol):
            return False
        self._tickets[camera] = ticket
        return True

    def user_allows(self, name: str, password: str) -> bool:
        expected = self.options.users.get(name)
        return expected is not None and hmac.compare_digest(password, expected)

    # Feeds

    def feed(self, camera: Camera) -> CameraFeed:
        feed = self.feeds.get(camera)
        if feed is None:
            own = self.sdk is not None and camera[0] in self.devices()
            feed = CameraFeed(
                self.sdk,  # type: ignore[arg-type]  # None only with sign_in
                camera[0],
                camera[1],
                definition=self.options.definition,
                idle=self.options.idle,
                sign_in=None if own else functools.partial(self._sign_in, camera),
            )
            self.feeds[camera] = feed
        return feed

    async def _sign_in(self, camera: Camera) -> IoTVideo:
        """A link signed in with the camera's latest ticket (a pull of a DescribeStream
        URI): the cloud checks it again (the device still streams, the relation holds)."""
        from iotvideo.app.sdk import IoTVideo

        ticket = self._tickets.get(camera)
        if ticket is None or self.options.cloud is None:
            raise IVError.of(ErrorCode.IVTermErr_msg_calling_check_token_error, "no ticket")
        sdk = IoTVideo()
        sdk.setup(self.options.cloud)
        try:
            await sdk.register_stream_ticket(ticket, timeout=10)
        except BaseException:
            await sdk.unregister()
            raise
        return sdk

    def subscribe(
        self, tid: str, source: str, push: Callable[[EncodedPacket], object]
    ) -> Callable[[], None]:
        return self.feed((tid, source)).subscribe(push)

    def unsubscribe(self, handle: Any) -> None:
        if callable(handle):
            handle()

    async def audio_of(self, tid: str, source: str) -> str | None:
        return await self.feed((tid, source)).audio(timeout=AUDIO_WAIT)

    def want_aac(self, tid: str, source: str) -> Callable[[], None]:
        return self.feed((tid, source)).want_aac()

    def keyframe_wanted(self, tid: str, source: str) -> None:
        feed = self.feeds.get((tid, source))
        if feed is not None and feed.player is not None:
            feed.player.request_keyframe()

    def client_count(self, tid: str, source: str, delta: int, protocol: str = "rtsp") -> None:
        key = ((tid, source), protocol)
        self.clients[key] = max(0, self.clients.get(key, 0) + delta)

    # Start and stop

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.options.cloud:
            self.ticket_key = await _ticket_key(self.options.cloud)
        if self.options.rtsp:
            from iotvideo.app.restream.rtsp import RtspServer

            self.rtsp = RtspServer(
                self,
                loop,
                host=self.options.host,
                port=self.options.rtsp_port,
                users=self.options.users,
            )
            self.rtsp.start()
        if self.options.http:
            await self._start_http()
        self._janitor = asyncio.ensure_future(self._sweep())

    async def stop(self) -> None:
        if self._janitor is not None:
            self._janitor.cancel()
        if self.rtsp is not None:
            await asyncio.to_thread(self.rtsp.stop)
        if self._http is not None:
            self._http.should_exit = True
            if self._http_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._http_task
        for segmenter, unsubscribe in self._hls.values():
            unsubscribe()
            segmenter.close()
        self._hls.clear()
        for feed in self.feeds.values():
            await feed.stop()

    async def _start_http(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.http_app(),
            host=self.options.host,
            port=self.options.http_port,
            log_level="warning",
            lifespan="off",
        )
        server = uvicorn.Server(config)
        self._http = server
        self._http_task = asyncio.ensure_future(server.serve())
        while not server.started:
            if self._http_task.done():
                self._http_task.result()  # raises why it could not start
                raise OSError(f"HTTP: cannot listen on port {self.options.http_port}")
            await asyncio.sleep(0.02)
        sockets = [s for srv in server.servers for s in srv.sockets]
        if sockets:
            self.http_port = sockets[0].getsockname()[1]
        log.info("HTTP on http://%s:%d/", self.options.host, self.http_port)

    async def _sweep(self) -> None:
        """HLS segmenters nobody has asked for in ``idle`` seconds leave their feed."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for camera, (segmenter, _unsubscribe) in list(self._hls.items()):
                if not segmenter.waiting and now - segmenter.last_request > self.options.idle:
                    self.drop_hls(camera)

    # HLS and snapshots

    def hls(self, camera: Camera) -> HlsSegmenter:
        """The camera's segmenter, made and subscribed on the first request."""
        entry = self._hls.get(camera)
        if entry is None:
            feed = self.feed(camera)
            segmenter = HlsSegmenter(
                f"{camera[0]}/{camera[1]}", has_audio=lambda: feed.audio_codec is not None
            )
            release_aac = feed.want_aac()  # HLS plays AAC, whatever the device sends
            unsubscribe = feed.subscribe(segmenter.add)

            def leave() -> None:
                unsubscribe()
                release_aac()

            entry = (segmenter, leave)
            self._hls[camera] = entry
            self.client_count(*camera, +1, protocol="hls")
        entry[0].last_request = time.monotonic()
        return entry[0]

    def drop_hls(self, camera: Camera) -> None:
        entry = self._hls.pop(camera, None)
        if entry is not None:
            entry[1]()
            entry[0].close()
            self.client_count(*camera, -1, protocol="hls")

    def mjpeg(self, camera: Camera) -> MjpegSource:
        """The camera's MJPEG source (one decoder however many clients read it)."""
        source = self._mjpeg.get(camera)
        if source is None:
            feed = self.feed(camera)
            source = self._mjpeg[camera] = MjpegSource(f"{camera[0]}/{camera[1]}", feed.subscribe)
        return source

    async def snapshot(self, camera: Camera, timeout: float = 10.0) -> bytes:
        """A JPEG of the camera's latest keyframe: decoded once per keyframe, however many
        ask."""
        feed = self.feed(camera)
        lock = self._picture_locks.setdefault(camera, asyncio.Lock())
        async with lock:
            keyframe = await feed.keyframe(timeout)
            cached = self._pictures.get(camera)
            if cached is not None and cached[0] == id(keyframe):
                return cached[1]
            picture = await asyncio.to_thread(_picture_of, keyframe.data)
            self._pictures[camera] = (id(keyframe), picture)
            return picture

    # Metrics

    def metrics(self) -> str:
        lines = [
            "# HELP iotvideo_restream_clients Clients reading a camera, by protocol.",
            "# TYPE iotvideo_restream_clients gauge",
        ]
        for ((tid, source), protocol), count in sorted(self.clients.items()):
            lines.append(
                f'iotvideo_restream_clients{{tid="{tid}",source="{source}",'
                f'protocol="{protocol}"}} {count}'
            )
        per_feed = [
            ("pulls_total", "counter", "Pulls started from the device.", "pulls"),
            ("failed_pulls_total", "counter", "Pulls the device refused or missed.",
             "failed_pulls"),
            ("packets_total", "counter", "Video access units received.", "packets"),
            ("bytes_total", "counter", "Video bytes received.", "bytes"),
        ]  # fmt: skip
        for name, kind, text, attr in per_feed:
            lines += [
                f"# HELP iotvideo_restream_{name} {text}",
                f"# TYPE iotvideo_restream_{name} {kind}",
            ]
            for (tid, source), feed in sorted(self.feeds.items()):
                value = getattr(feed.stats, attr)
                lines.append(f'iotvideo_restream_{name}{{tid="{tid}",source="{source}"}} {value}')
        lines += [
            "# HELP iotvideo_restream_startup_seconds Pull start to first keyframe, median.",
            "# TYPE iotvideo_restream_startup_seconds gauge",
        ]
        for (tid, source), feed in sorted(self.feeds.items()):
            if feed.stats.startups:
                median = statistics.median(feed.stats.startups)
                lines.append(
                    f'iotvideo_restream_startup_seconds{{tid="{tid}",source="{source}"}} '
                    f"{median:.4f}"
                )
        lines += [
            "# HELP iotvideo_restream_pulling Cameras being pulled now.",
            "# TYPE iotvideo_restream_pulling gauge",
            f"iotvideo_restream_pulling {sum(1 for f in self.feeds.values() if f.running)}",
        ]
        return "\n".join(lines) + "\n"

    # HTTP

    def http_app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse, Response, StreamingResponse
        from starlette.routing import Route

        restream = self

        def allowed(request: Request, path: str) -> bool:
            if restream.token_allows(path, request.url.query, "HLS"):
                return True
            header = request.headers.get("authorization", "")
            if header.lower().startswith("basic "):
                try:
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    return False
                return restream.user_allows(name, password)
            return False

        def refused() -> Response:
            return PlainTextResponse(
                "credentials needed: a user and password (basic) or ?token=\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="iotvideo restream"'},
            )

        def camera_of(request: Request) -> Camera | Response:
            """The camera a request names and may see, or the answer refusing it."""
            path = "/" + request.path_params["camera"].strip("/")
            camera = restream.camera_of(path, request.url.query, "HLS")
            if camera is None:
                return PlainTextResponse("no such camera\n", status_code=404)
            return camera if allowed(request, path) else refused()

        async def snapshot(request: Request) -> Response:
            camera = camera_of(request)
            if isinstance(camera, Response):
                return camera
            try:
                picture = await restream.snapshot(camera)
            except TimeoutError:
                return PlainTextResponse("no picture from the camera yet\n", status_code=504)
            except Exception as exc:  # the device refused or is away
                return PlainTextResponse(f"the camera cannot be reached: {exc}\n", 502)
            return Response(
                picture, media_type="image/jpeg", headers={"Cache-Control": "no-store", **CORS}
            )

        async def playlist(request: Request) -> Response:
            camera = camera_of(request)
            if isinstance(camera, Response):
                return camera
            segmenter = restream.hls(camera)
            blocking = _blocking_reload(request.query_params)
            if isinstance(blocking, str):
                return PlainTextResponse(blocking + "\n", status_code=400)
            try:
                if blocking is not None:  # LL-HLS: the playlist once it has that part
                    msn, part = blocking
                    if msn > segmenter.next_part()[0] + 2:
                        return PlainTextResponse("_HLS_msn is too far ahead\n", 400)
                    await segmenter.wait_part(msn, part, timeout=3 * segmenter.target + 3)
                await segmenter.wait_segments(2, timeout=15)
                if segmenter.refused:
                    restream.drop_hls(camera)
                    return PlainTextResponse(
                        f"the camera refused: {restream.feed(camera).refused}\n", 403
                    )
            except TimeoutError:
                error = restream.feed(camera).error
                return PlainTextResponse(
                    f"no video from the camera yet{f': {error}' if error else ''}\n", 504
                )
            given = parse_qs(request.url.query)
            kept: dict[str, str] = {k: given[k][0] for k in ("token", "ticket") if k in given}
            query = urlencode(kept)
            return Response(
                segmenter.playlist(query),
                media_type="application/vnd.apple.mpegurl",
                headers={"Cache-Control": "no-cache", **CORS},
            )

        async def segment(request: Request) -> Response:
            camera = camera_of(request)
            if isinstance(camera, Response):
                return camera
            entry = restream._hls.get(camera)
            found = entry[0].segment(int(request.path_params["n"])) if entry else None
            if found is None:
                return PlainTextResponse("no such segment (any more)\n", status_code=404)
            entry[0].last_request = time.monotonic()  # type: ignore[index]
            return Response(found.data, media_type="video/mp2t", headers=CORS)

        async def part(request: Request) -> Response:
            """An LL-HLS part; the one the playlist hints at is answered once it is made."""
            camera = camera_of(request)
            if isinstance(camera, Response):
                return camera
            entry = restream._hls.get(camera)
            if entry is None:
                return PlainTextResponse("no such part (any more)\n", status_code=404)
            segmenter = entry[0]
            sequence, index = request.path_params["n"], request.path_params["part"]
            if (sequence, index) == segmenter.next_part():
                with contextlib.suppress(TimeoutError):
                    await segmenter.wait_part(sequence, index, timeout=3 * segmenter.target + 3)
            found = segmenter.part(sequence, index)
            if found is None:
                return PlainTextResponse("no such part (any more)\n", status_code=404)
            segmenter.last_request = time.monotonic()
            return Response(found.data, media_type="video/mp2t", headers=CORS)

        async def mjpeg(request: Request) -> Response:
            camera = camera_of(request)
            if isinstance(camera, Response):
                return camera
            source = restream.mjpeg(camera)
            restream.client_count(*camera, +1, protocol="mjpeg")

            async def body() -> AsyncIterator[bytes]:
                try:
                    async for part in source.frames():
                        yield part
                finally:
                    restream.client_count(*camera, -1, protocol="mjpeg")

            return StreamingResponse(
                body(),
                media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                headers={"Cache-Control": "no-store", **CORS},
            )

        async def metrics(_request: Request) -> Response:
            return PlainTextResponse(restream.metrics(), media_type="text/plain; version=0.0.4")

        return Starlette(
            routes=[
                Route("/metrics", metrics),
                Route("/{camera:path}/snapshot.jpg", snapshot),
                Route("/{camera:path}/stream.mjpeg", mjpeg),
                Route("/{camera:path}/index.m3u8", playlist),
                Route("/{camera:path}/seg{n:int}.{part:int}.ts", part),
                Route("/{camera:path}/seg{n:int}.ts", segment),
            ]
        )


def _blocking_reload(query: Mapping[str, str]) -> tuple[int, int | None] | str | None:
    """LL-HLS's ``_HLS_msn`` (and ``_HLS_part``) of a playlist request: None without
    them, what is wrong with them (a 400) when they are not numbers."""
    msn, part = query.get("_HLS_msn"), query.get("_HLS_part")
    if msn is None:
        return None if part is None else "_HLS_part needs _HLS_msn"
    if not msn.isdigit() or (part is not None and not part.isdigit()):
        return "_HLS_msn and _HLS_part are numbers"
    return int(msn), None if part is None else int(part)


async def _ticket_key(cloud: str) -> Ed25519PublicKey | None:
    """The cloud's stream key (its public half), or None (and a warning) when the cloud
    does not say: DescribeStream URIs are then refused."""
    import httpx

    url = cloud.rstrip("/") + "/restream/key"
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(url)
            answer.raise_for_status()
            raw = base64.b64decode(answer.json()["key"])
        return Ed25519PublicKey.from_public_bytes(raw)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.warning("no stream key from %s (%s): DescribeStream URIs will be refused", url, exc)
        return None


def _picture_of(keyframe: bytes) -> bytes:
    decoder = H264Decoder()
    frames = decoder.decode(keyframe, 0) or decoder.flush()
    if not frames:
        raise ValueError("the keyframe did not decode")
    return encode_picture(frames[-1], "jpeg")
