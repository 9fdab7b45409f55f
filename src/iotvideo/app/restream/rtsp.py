"""The RTSP face of restream: GStreamer's RTSP server (gst-rtsp-server, through PyGObject).

GStreamer does RTSP itself (DESCRIBE, SETUP over UDP or interleaved TCP, RTCP, digest
authentication, keep-alive and session timeouts); this module only feeds it. Each client
gets its own small pipeline, ``appsrc ! h264parse ! rtph264pay``, fed with the camera's
access units as they arrived from the device (no decoding, no encoding), starting with
the feed's current group of pictures so that its first picture comes at once. The
feed, one per camera, is shared by all of them.

A camera with audio gets a second stream: G.711 as the device sent it (``rtppcmupay``,
``rtppcmapay``), or AAC (``aacparse ! rtpmp4gpay``) for a device sending Opus, transcoded
once per camera by the feed. The pipeline is made at the client's DESCRIBE, so the first
client of a camera waits there until the device has answered (at most 5 s; then video
only).

GStreamer runs its own main loop on a thread; packets are pushed from the asyncio loop
(``appsrc`` is thread-safe), and a client's arrival or departure is handed back to the
asyncio loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from iotvideo.app.player import EncodedPacket
from iotvideo.app.restream.audio import AUDIO_WAIT

__all__ = ["RtspServer", "RtspUnavailable", "StreamAccess"]

log = logging.getLogger("iotvideo.app.restream")

MS = 1_000_000  # nanoseconds


class RtspUnavailable(RuntimeError):
    """GStreamer's RTSP server or its Python bindings are not installed."""


class StreamAccess(Protocol):
    """What the restream server decides for the RTSP face."""

    def camera_of(self, path: str, query: str | None = None) -> tuple[str, str] | None:
        """The (tid, source) a URL path names, or None when it names none we serve."""

    def token_allows(self, path: str, query: str | None) -> bool:
        """Does the URL's query carry a token (or a ticket) that opens this path's camera?"""

    def subscribe(self, tid: str, source: str, push: Callable[[EncodedPacket], object]) -> Any:
        """Start feeding ``push`` (on the asyncio loop); returns what :meth:`unsubscribe`
        takes."""

    def unsubscribe(self, handle: Any) -> None: ...

    def client_count(self, tid: str, source: str, delta: int) -> None: ...

    def keyframe_wanted(self, tid: str, source: str) -> None:
        """A client starts playing: the camera's next keyframe, soon."""

    async def audio_of(self, tid: str, source: str) -> str | None:
        """The camera's audio codec (opus, pcmu, pcma), None without audio."""

    def want_aac(self, tid: str, source: str) -> Callable[[], None]:
        """Have the camera's audio sent as AAC too, until the returned function is called."""


def _gst() -> tuple[Any, Any, Any, Any]:
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtsp", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtsp, GstRtspServer
    except (ImportError, ValueError) as exc:
        raise RtspUnavailable(
            "RTSP needs GStreamer's RTSP server and PyGObject: pip install 'iotvideo[restream]' "
            "and the system packages gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-bad "
            f"(scripts/system-deps.sh installs them) ({exc})"
        ) from exc
    Gst.init(None)
    return GLib, Gst, GstRtsp, GstRtspServer


PIPELINE = (
    "( appsrc name=src is-live=true format=time do-timestamp=false "
    "max-bytes=4000000 leaky-type=downstream "
    "caps=video/x-h264,stream-format=byte-stream,alignment=au "
    "! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 {audio})"
)
_AUDIO_SOURCE = (
    "appsrc name=asrc is-live=true format=time do-timestamp=false max-bytes=200000 "
    "leaky-type=downstream caps={caps} ! "
)
#: The device's audio codec -> (the packets the client takes, its RTSP branch).
AUDIO = {
    "pcmu": ("audio/pcmu", "audio/x-mulaw,rate=8000,channels=1", "rtppcmupay name=pay1"),
    "pcma": ("audio/pcma", "audio/x-alaw,rate=8000,channels=1", "rtppcmapay name=pay1"),
    "opus": (
        "audio/aac",
        "audio/mpeg,mpegversion=4,stream-format=adts,rate=48000,channels=1",
        "aacparse ! rtpmp4gpay name=pay1 pt=97",
    ),
}


def pipeline_for(audio: str | None) -> str:
    """The pipeline of a client of a camera whose audio codec is ``audio``."""
    if audio not in AUDIO:
        return PIPELINE.format(audio="")
    _mime, caps, branch = AUDIO[audio]
    return PIPELINE.format(audio=_AUDIO_SOURCE.format(caps=caps) + branch + " ")


@dataclass
class _Client:
    """One client's pipeline, fed from the asyncio loop."""

    appsrc: Any
    pipeline: Any
    buffer: Callable[[bytes], Any]
    handle: Any = None
    #: The audio source and the packets it takes (``audio/pcmu``...), if the camera has audio.
    asrc: Any = None
    audio_mime: str = ""
    release_audio: Callable[[], None] | None = None
    _base: int = 0  # running time (ns) of the RTP time _rtp0
    _rtp0: int | None = None
    _last_pts: int = -1
    _last_audio_pts: int = -1

    def push(self, packet: EncodedPacket | None) -> None:
        """``None``: the camera's pull was refused for good; the client's stream ends.

        Stamp with the device's own clock (RTP, 90 kHz), anchored at the running time
        of the first packet: frames keep their spacing, a replayed group of pictures
        included (it then plays that much behind live). Audio comes on the same
        timeline (the feed restamps it), so it is stamped the same way and stays in step."""
        if packet is None:
            self.appsrc.emit("end-of-stream")
            if self.asrc is not None:
                self.asrc.emit("end-of-stream")
            return
        if not packet.mime.lower().startswith("video/"):
            self._push_audio(packet)
            return
        offset = None if self._rtp0 is None else (packet.timestamp - self._rtp0) & 0xFFFFFFFF
        if offset is None or offset > 10 * 90_000:  # the first, or a new pull's timeline
            clock = self.pipeline.get_clock()
            now = clock.get_time() - self.pipeline.get_base_time() if clock is not None else 0
            self._base, self._rtp0, offset = max(now, self._last_pts + MS), packet.timestamp, 0
        pts = max(self._base + offset * 1_000_000_000 // 90_000, self._last_pts + MS)
        self._last_pts = pts
        buf = self.buffer(packet.data)
        buf.pts = buf.dts = pts
        self.appsrc.emit("push-buffer", buf)

    def _push_audio(self, packet: EncodedPacket) -> None:
        if self.asrc is None or self._rtp0 is None or packet.mime.lower() != self.audio_mime:
            return  # not this client's audio, or before its first picture
        offset = (packet.timestamp - self._rtp0) & 0xFFFFFFFF
        if offset > 10 * 90_000:
            return  # before the first picture, or the old timeline of a pull that ended
        pts = self._base + offset * 1_000_000_000 // 90_000
        if pts <= self._last_audio_pts:
            return
        self._last_audio_pts = pts
        buf = self.buffer(packet.data)
        buf.pts = buf.dts = pts
        self.asrc.emit("push-buffer", buf)


class RtspServer:
    """GStreamer's RTSP server on ``host``:``port``, one mount per camera path, made on
    the first request for it. ``users``: name -> password, checked with digest
    authentication; a token in the URL's query opens its camera too (``access``)."""

    def __init__(
        self,
        access: StreamAccess,
        loop: asyncio.AbstractEventLoop,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - a server for the LAN's tools, as configured
        port: int = 8554,
        users: dict[str, str] | None = None,
    ) -> None:
        self.GLib, self.Gst, GstRtsp, GstRtspServer = _gst()
        self.access = access
        self.loop = loop
        self.host, self.port = host, port
        self._context = self.GLib.MainContext.new()
        self._main = self.GLib.MainLoop.new(self._context, False)
        self._thread: threading.Thread | None = None
        self._source: Any = None
        self._mounted: set[str] = set()
        self._lock = threading.Lock()
        #: Clients a token let in -> the camera path it opened (a client's SETUP and PLAY
        #: URLs carry no query); the wrapper is held, so GStreamer hands back the same one.
        self._token_clients: dict[Any, str] = {}
        server = GstRtspServer.RTSPServer()
        server.set_address(host)
        server.set_service(str(port))
        self._server = server
        self._factory_class = self._make_factory_class(GstRtspServer)
        self._auth = self._make_auth(GstRtspServer, GstRtsp, users or {})
        server.set_auth(self._auth)
        self._role = self.Gst.Structure.from_string(
            "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )[0]

    # Start and stop

    def start(self) -> None:
        try:
            self._source = self._server.create_source(None)
        except self.GLib.Error as exc:
            raise OSError(
                f"RTSP: cannot listen on {self.host}:{self.port}: {exc.message}"
            ) from None
        self._source.attach(self._context)
        self.port = self._server.get_bound_port()
        self._thread = threading.Thread(target=self._main.run, name="rtsp", daemon=True)
        self._thread.start()
        log.info("RTSP on rtsp://%s:%d/", self.host, self.port)

    def stop(self) -> None:
        if self._thread is None:
            return

        def close_all(*_args: Any) -> bool:
            self._server.client_filter(lambda _s, _c, *_: 2)  # GST_RTSP_FILTER_REMOVE
            self._source.destroy()
            self._source = None  # its last reference: the listening socket closes
            self._main.quit()
            return False

        source = self.GLib.idle_source_new()
        source.set_callback(close_all)
        source.attach(self._context)
        self._thread.join(5)
        self._thread = None

    # Authentication: digest users, or a token in the URL

    def _make_auth(self, GstRtspServer: Any, GstRtsp: Any, users: dict[str, str]) -> Any:
        server = self

        class Auth(GstRtspServer.RTSPAuth):  # type: ignore[misc]
            def do_check(self, ctx: Any, check: str) -> bool:
                uri = ctx.uri
                if uri is not None and check == "auth.check.url":
                    server._mount(uri.abspath, uri.query)
                client = ctx.client
                if uri is not None and check.startswith("auth.check.media.factory"):
                    path = _camera_path(uri.abspath)
                    if server.access.token_allows(path, uri.query):
                        server._remember_token_client(client, path)
                        return True
                    if client is not None and server._token_clients.get(client) == path:
                        return True  # SETUP and PLAY carry no query
                return bool(GstRtspServer.RTSPAuth.do_check(self, ctx, check))

        auth = Auth()
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        for name, password in users.items():
            token = GstRtspServer.RTSPToken()
            token.set_string("media.factory.role", "user")
            auth.add_digest(name, password, token)
        return auth

    def _remember_token_client(self, client: Any, path: str) -> None:
        if client is None or client in self._token_clients:
            if client is not None:
                self._token_clients[client] = path
            return
        self._token_clients[client] = path
        client.connect("closed", lambda c: self._token_clients.pop(c, None))

    # Mounts and clients

    def _mount(self, abspath: str, query: str | None) -> None:
        """Add the mount for a camera path on its first request (on GStreamer's thread)."""
        path = _camera_path(abspath)
        with self._lock:
            if path in self._mounted:
                return
            camera = self.access.camera_of(path, query)
            if camera is None:
                return  # no mount: 404
            factory = self._factory_class(self, *camera)
            factory.set_shared(False)
            factory.add_role_from_structure(self._role)
            self._server.get_mount_points().add_factory(path, factory)
            self._mounted.add(path)

    def _make_factory_class(self, GstRtspServer: Any) -> type:
        server = self

        class Factory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
            def __init__(self, owner: RtspServer, tid: str, source: str) -> None:
                super().__init__()
                self.tid, self.source = tid, source
                self.connect("media-configure", self._configure)

            def do_create_element(self, _url: Any) -> Any:
                return server.Gst.parse_launch(pipeline_for(server._audio_of(self)))

            def _configure(self, _factory: Any, media: Any) -> None:
                pipeline = media.get_element()
                client = _Client(
                    pipeline.get_by_name("src"), pipeline, server.Gst.Buffer.new_wrapped
                )
                client.asrc = pipeline.get_by_name("asrc")
                tid, source = self.tid, self.source
                audio = getattr(self, "audio", None)
                if client.asrc is not None and audio in AUDIO:
                    client.audio_mime = AUDIO[audio][0]

                def attach() -> None:
                    if client.audio_mime == "audio/aac":
                        client.release_audio = server.access.want_aac(tid, source)
                    client.handle = server.access.subscribe(tid, source, client.push)
                    server.access.client_count(tid, source, +1)

                def detach() -> None:
                    server.access.unsubscribe(client.handle)
                    if client.release_audio is not None:
                        client.release_audio()
                    server.access.client_count(tid, source, -1)

                def target_state(_media: Any, state: int) -> None:
                    # The client's PLAY. The keyframe it was prepared with (its SDP needs
                    # one) went before: ask the device for a new one to start it on.
                    if state == server.Gst.State.PLAYING:
                        server.loop.call_soon_threadsafe(server.access.keyframe_wanted, tid, source)

                server.loop.call_soon_threadsafe(attach)
                media.connect("target-state", target_state)
                media.connect("unprepared", lambda _m: server.loop.call_soon_threadsafe(detach))

        return Factory

    def _audio_of(self, factory: Any) -> str | None:
        """The audio codec of a factory's camera (on GStreamer's thread: waits for the
        asyncio loop to learn it, at most AUDIO_WAIT seconds)."""
        future = asyncio.run_coroutine_threadsafe(
            self.access.audio_of(factory.tid, factory.source), self.loop
        )
        try:
            codec = future.result(AUDIO_WAIT + 1)
        except Exception as exc:  # the device is away: serve video, audio on a later client
            log.info("RTSP: no audio for %s: %r", factory.tid, exc)
            future.cancel()
            codec = None
        factory.audio = codec
        return codec


def _camera_path(abspath: str) -> str:
    """``/tid/2/stream=0`` -> ``/tid/2``: the camera a request's path is about."""
    parts = [p for p in abspath.split("/") if p]
    if parts and parts[-1].startswith("stream="):
        parts.pop()
    return "/" + "/".join(parts)
