"""Live media: ``Transmission``, ``MonitorPlayer``, ``LivePlayer`` (the seed's 多媒体).

::

    player = MonitorPlayer(device_id, sdk=sdk)
    player.delegate = my_delegate                 # status changes, errors, data
    await player.play()                           # connected; frames follow
    async for frame in player.frames():           # av.VideoFrame; frame.to_ndarray()
        ...
    await player.snapshot("now.jpg")
    await player.start_recording("clip.mp4"); ...; await player.stop_recording()
    await player.start_talking(ToneCapture(440)); await player.stop_talking()
    await player.switch_definition("mid")         # no reconnect
    await player.stop()

The app offers, the device answers, over the link; media flows peer to peer (WebRTC,
DTLS-SRTP), through the TURN relay the cloud hands out when it must. Every connection
carries a ``data`` channel for the app's own bytes (:meth:`Connection.send`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import av
import numpy as np

from iotvideo.app.calls import Completion, operation
from iotvideo.app.messages import DeviceMessage
from iotvideo.app.modules import (
    AudioCapturable,
    AudioCapture,
    AudioDecodable,
    AudioDecoder,
    AudioEncodable,
    AudioEncoder,
    AudioRender,
    AudioRenderable,
    AVRecordable,
    TestCamera,
    VideoCapturable,
    VideoDecodable,
    VideoDecoder,
    VideoEncodable,
    VideoEncoder,
    VideoRender,
    VideoRenderable,
)
from iotvideo.media.audio import codec_of_mime
from iotvideo.media.h264 import is_idr
from iotvideo.media.recorder import MP4Recorder, encode_picture
from iotvideo.media.sources import DEFINITIONS, AudioStream, EncodedVideoStream, Feed
from iotvideo.media.webrtc import (
    RTCPeerConnection,
    RTCSessionDescription,
    codecs_of,
    ice_servers,
    rtc_configuration,
    tap_receiver,
)
from iotvideo.media.worker import SerialWorker
from iotvideo.protocol import media as wire
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.states import StateMachine

if TYPE_CHECKING:
    from iotvideo.app.sdk import IoTVideo

__all__ = [
    "PLAYER_MOVES",
    "Connection",
    "ConnectionDelegate",
    "EncodedPacket",
    "LivePlayer",
    "MonitorPlayer",
    "PlayerDelegate",
    "PlayerStatus",
    "Transmission",
]

log = logging.getLogger("iotvideo.app.player")

#: When the cloud says the device went offline (its link dropped), the device has this
#: long to answer a ``ping`` over the peer connection; the session goes on if it does.
PEER_CHECK_TIMEOUT = 3.0


class PlayerStatus(Enum):
    IDLE = "idle"
    CONNECTING = "connecting"  # signaling, ICE, DTLS
    LOADING = "loading"  # connected, waiting for the first picture
    PLAYING = "playing"
    PAUSED = "paused"  # playback only
    STOPPED = "stopped"
    FAILED = "failed"


#: Where a player may go from each status (the one table; anything else is a bug and
#: raises IllegalTransition).
PLAYER_MOVES: dict[PlayerStatus, frozenset[PlayerStatus]] = {
    PlayerStatus.IDLE: frozenset({PlayerStatus.CONNECTING, PlayerStatus.STOPPED}),
    PlayerStatus.CONNECTING: frozenset(
        {PlayerStatus.LOADING, PlayerStatus.PLAYING, PlayerStatus.FAILED, PlayerStatus.STOPPED}
    ),
    PlayerStatus.LOADING: frozenset(
        {PlayerStatus.PLAYING, PlayerStatus.PAUSED, PlayerStatus.FAILED, PlayerStatus.STOPPED}
    ),
    PlayerStatus.PLAYING: frozenset(
        {PlayerStatus.PAUSED, PlayerStatus.FAILED, PlayerStatus.STOPPED}
    ),
    PlayerStatus.PAUSED: frozenset(
        {PlayerStatus.PLAYING, PlayerStatus.FAILED, PlayerStatus.STOPPED}
    ),
    PlayerStatus.STOPPED: frozenset({PlayerStatus.CONNECTING}),
    PlayerStatus.FAILED: frozenset({PlayerStatus.CONNECTING, PlayerStatus.STOPPED}),
}


class ConnectionDelegate(Protocol):
    """IVConnectionDelegate (every method optional)."""

    def connection_did_receive_data(self, connection: Connection, data: bytes) -> None: ...


class PlayerDelegate(ConnectionDelegate, Protocol):
    """IVPlayerDelegate (every method optional)."""

    def player_did_update_status(self, player: Connection, status: PlayerStatus) -> None: ...

    def player_did_receive_error(self, player: Connection, error: IVError) -> None: ...

    def player_did_change_size(self, player: Connection, width: int, height: int) -> None: ...


def _err(code: ErrorCode, message: str) -> IVError:
    return IVError.of(code, message)


class Connection:
    """IVConnection: a peer-to-peer connection to one device, with a custom-data channel.

    Use a subclass: :class:`Transmission` (data only), :class:`MonitorPlayer`,
    :class:`LivePlayer`.
    """

    kind = "transmission"

    def __init__(
        self,
        device_id: str,
        *,
        source_id: str | int | None = None,
        sdk: IoTVideo | None = None,
        relay_only: bool = False,
    ) -> None:
        from iotvideo.app.sdk import IoTVideo

        self.sdk = sdk or IoTVideo.default()
        self.device_id = device_id
        self.source_id = "" if source_id is None else str(source_id)
        self.relay_only = relay_only
        self.delegate: Any = None
        self._status = StateMachine("player status", PLAYER_MOVES, PlayerStatus.IDLE)
        self.error: IVError | None = None
        #: Milliseconds from connect()/play() to each start-up stage reached.
        self.trace: dict[str, float] = {}
        #: What the device said about its streams in the answer.
        self.answer: dict[str, Any] = {}
        self._pc: RTCPeerConnection | None = None
        self._ctl: Any = None
        self._data: Any = None
        self._t0 = 0.0
        self._received: asyncio.Queue[bytes | None] = asyncio.Queue(1000)
        self._control_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()
        self._workers: list[SerialWorker] = []
        self._stop_watching: Callable[[], None] | None = None
        self._teardown_task: asyncio.Future[None] | None = None
        self._peer_check: asyncio.Future[None] | None = None

    # State

    @property
    def connected(self) -> bool:
        return self._pc is not None and self._connected.is_set() and not self._ended.is_set()

    @property
    def status(self) -> PlayerStatus:
        """Where the player stands (moves only along PLAYER_MOVES)."""
        return self._status.state

    def _set_status(self, status: PlayerStatus) -> None:
        if not self._status.move(status):
            return
        log.debug("%s %s: %s", self.kind, self.device_id, status.value)
        self._tell("player_did_update_status", self, status)

    def _tell(self, method: str, *args: Any) -> None:
        callback = getattr(self.delegate, method, None)
        if callback is not None:
            try:
                callback(*args)
            except Exception:
                log.exception("delegate %s failed", method)

    def _mark(self, stage: str) -> None:
        if stage not in self.trace and self._t0:
            self.trace[stage] = round((time.monotonic() - self._t0) * 1000, 2)

    # Connecting

    @operation()
    async def connect(self, *, timeout: float = 10.0, completion: Completion | None = None) -> None:
        """Connect to the device; raise IVError (21020 too many connections, 21021
        already connected, 20007 device busy, 21022 failed, ...)."""
        if self._pc is not None:
            raise _err(ErrorCode.IVConnError_Duplicate, "already connected; disconnect() first")
        connections = self.sdk.connections
        if len(connections) >= wire.MAX_CONNECTION_NUM:
            raise _err(
                ErrorCode.IVConnError_ExceedsMaxNumber,
                f"{wire.MAX_CONNECTION_NUM} connections are open (MAX_CONNECTION_NUM); "
                "disconnect one first",
            )
        if self._teardown_task is not None:
            await self._teardown_task
            self._teardown_task = None
        connections.add(self)
        self._stop_watching = self.sdk.message.add_listener(self._on_message)
        self.error = None
        self.trace = {}
        self._connected.clear()
        self._ended.clear()
        self._t0 = time.monotonic()
        self._set_status(PlayerStatus.CONNECTING)
        try:
            async with asyncio.timeout(timeout):
                await self._connect()
        except BaseException as exc:
            await self._teardown()
            self._set_status(PlayerStatus.FAILED)
            if isinstance(exc, TimeoutError):
                raise _err(
                    ErrorCode.IVConnError_ConnectFailed,
                    f"no connection to {self.device_id} in {timeout:g} s",
                ) from None
            raise

    async def _connect(self) -> None:
        ice = await self.sdk.request("media.ice", {"tid": self.device_id})
        servers = ice_servers(ice.get("ice_servers") or [])
        pc = RTCPeerConnection(rtc_configuration(servers, relay_only=self.relay_only))
        self._pc = pc
        self._ctl = pc.createDataChannel(wire.CONTROL_CHANNEL)
        self._ctl.on("message", self._on_control)
        self._data = pc.createDataChannel(wire.DATA_CHANNEL)
        self._data.on("message", self._on_data)
        self._setup_media(pc)

        @pc.on("iceconnectionstatechange")
        def ice_changed() -> None:
            if pc.iceConnectionState == "completed":
                self._mark("ice")

        @pc.on("connectionstatechange")
        def changed() -> None:
            if pc.connectionState == "connected":
                self._mark("dtls")
            elif pc.connectionState in ("failed", "closed") and pc is self._pc:
                self._lost(
                    _err(ErrorCode.IVTermErr_msg_calling_timeout_disconnect, "connection lost")
                )

        offer = await pc.createOffer()
        await pc.setLocalDescription(offer)
        request: dict[str, Any] = {
            "tid": self.device_id,
            "sdp": pc.localDescription.sdp,
            "kind": self.kind,
            "source": self.source_id,
        }
        request.update(self._offer_fields())
        self.answer = await self.sdk.request("media.offer", request)
        self._mark("signaling")
        await pc.setRemoteDescription(RTCSessionDescription(self.answer["sdp"], "answer"))
        opened = asyncio.get_running_loop().create_future()
        if self._data.readyState == "open":
            opened.set_result(None)
        else:

            def on_open() -> None:
                if not opened.done():
                    opened.set_result(None)

            self._data.once("open", on_open)
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({opened, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if self._ended.is_set() or not opened.done():
            raise self.error or _err(ErrorCode.IVConnError_ConnectFailed, "connection failed")
        self._connected.set()
        self._on_connected()

    def _setup_media(self, pc: RTCPeerConnection) -> None:
        """Add transceivers and taps (players)."""

    def _offer_fields(self) -> dict[str, Any]:
        return {}

    def _on_connected(self) -> None:
        self._set_status(PlayerStatus.PLAYING)

    @operation()
    async def disconnect(self, *, completion: Completion | None = None) -> None:
        """Close the connection (the seed's disconnect)."""
        if self._teardown_task is not None:
            await self._teardown_task
        await self._teardown()
        if self.status is not PlayerStatus.FAILED:
            self._set_status(PlayerStatus.STOPPED)

    def _on_message(self, message: DeviceMessage) -> None:
        """The cloud says the device went offline (its link dropped). The media may not
        have: the session is peer to peer, and a device's link drops and comes back (an
        instance of the cloud dies, a network blip). Ask the device over the peer
        connection; the session ends only if it does not answer (long before ICE would
        notice that it is gone)."""
        if (
            message.device_id == self.device_id
            and message.kind == "property"
            and message.name == "ProReadonly._online"
            and isinstance(message.value, dict)
            and message.value.get("stVal") == 0
            and self._pc is not None
            and (self._peer_check is None or self._peer_check.done())
        ):
            self._peer_check = asyncio.ensure_future(self._check_peer())

    async def _check_peer(self) -> None:
        try:
            await self._control_request("ping", "pong", PEER_CHECK_TIMEOUT)
        except IVError as exc:
            if exc.code in (
                ErrorCode.IVPlayerError_DeviceOperationFailed,  # no answer
                ErrorCode.IVConnError_Disconnected,
            ):
                self._lost(
                    _err(
                        ErrorCode.IVTermErr_msg_calling_timeout_disconnect,
                        "the device went offline",
                    )
                )
            # Any other answer (an error from a device that has no ping): it is there.
        else:
            log.info("%s %s: the device's link dropped; the session goes on", self.kind,
                     self.device_id)  # fmt: skip

    async def _teardown(self) -> None:
        pc, self._pc = self._pc, None
        self._ended.set()
        self._end_frames()
        check, self._peer_check = self._peer_check, None
        if check is not None and check is not asyncio.current_task():
            check.cancel()
        stop_watching, self._stop_watching = self._stop_watching, None
        if stop_watching is not None:
            stop_watching()
        self.sdk.connections.discard(self)
        for worker in self._workers:
            worker.close()
        self._workers = []
        for waiter in self._control_waiters.values():
            if not waiter.done():
                waiter.set_exception(_err(ErrorCode.IVConnError_Disconnected, "disconnected"))
        self._control_waiters.clear()
        with contextlib.suppress(asyncio.QueueFull):
            self._received.put_nowait(None)
        if pc is not None:
            await pc.close()

    def _end_frames(self) -> None:
        """The connection ended: every ``frames()`` loop ends (hooked in Connection, the
        players override it)."""

    def _lost(self, error: IVError) -> None:
        """The device hung up or the connection broke."""
        if self._ended.is_set():
            return
        self.error = error
        log.info("%s %s ended: %s", self.kind, self.device_id, error)
        self._ended.set()
        self._set_status(PlayerStatus.FAILED)
        self._tell("player_did_receive_error", self, error)
        self._teardown_task = asyncio.ensure_future(self._teardown())

    @operation()
    async def wait_ended(self, *, completion: Completion | None = None) -> IVError | None:
        """Wait until the connection ends (and is released); the error that ended it
        (None if it was stopped)."""
        await self._ended.wait()
        if self._teardown_task is not None:
            await self._teardown_task
        return self.error

    # Custom data

    def send(self, data: bytes) -> None:
        """Send custom data (at most MAX_PKG_BYTES = 64000 bytes): 21024 above it, 21023
        when not connected."""
        if len(data) > wire.MAX_PKG_BYTES:
            raise _err(
                ErrorCode.IVConnError_ExceedsMaxLength,
                f"{len(data)} bytes is over MAX_PKG_BYTES ({wire.MAX_PKG_BYTES}); split it",
            )
        if not self.connected or self._data is None or self._data.readyState != "open":
            raise _err(ErrorCode.IVConnError_Disconnected, "not connected; connect() first")
        self._data.send(bytes(data))

    async def received(self) -> AsyncIterator[bytes]:
        """Custom data from the device as it arrives, until the connection ends."""
        while (data := await self._received.get()) is not None:
            yield data

    def _on_data(self, message: str | bytes) -> None:
        data = message.encode() if isinstance(message, str) else message
        if self._received.full():
            self._received.get_nowait()
        self._received.put_nowait(data)
        self._tell("connection_did_receive_data", self, data)

    # Control channel

    def _on_control(self, message: str | bytes) -> None:
        try:
            msg = wire.parse_control(message)
        except ValueError:
            return
        op = msg["op"]
        if self._on_device_says(op, msg):
            return
        if op == "bye":
            code = int(msg.get("code") or ErrorCode.IVTermErr_msg_calling_dev_hangup)
            self._lost(IVError.of(code, str(msg.get("msg") or "the device hung up")))
            return
        waiter = self._control_waiters.pop(op, None)
        if op == "error":
            waiter = next(iter(self._control_waiters.values()), None)
            self._control_waiters.clear()
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)

    def _on_device_says(self, op: str, message: dict[str, Any]) -> bool:
        """A control message the device sends on its own (not a reply); True if handled
        (subclasses: playback's ``end``)."""
        return False

    async def _control_request(self, op: str, done: str, timeout: float, **fields: Any) -> Any:
        if not self.connected or self._ctl is None:
            raise _err(ErrorCode.IVConnError_Disconnected, "not connected")
        waiter = asyncio.get_running_loop().create_future()
        self._control_waiters[done] = waiter
        self._ctl.send(wire.control(op, **fields))
        try:
            async with asyncio.timeout(timeout):
                reply = await waiter
        except TimeoutError:
            raise _err(
                ErrorCode.IVPlayerError_DeviceOperationFailed, f"no answer to {op}"
            ) from None
        finally:
            self._control_waiters.pop(done, None)
        if reply.get("op") == "error":
            raise IVError.of(int(reply.get("code", 21038)), str(reply.get("msg", "")) or None)
        return reply

    def _worker(self, what: str) -> SerialWorker:
        worker = SerialWorker(f"{self.kind}-{self.device_id}-{what}")
        self._workers.append(worker)
        return worker


class Transmission(Connection):
    """IVTransmission: a connection for custom data only (no audio or video)."""

    kind = "transmission"


@dataclass(frozen=True)
class EncodedPacket:
    """One encoded unit as it arrived from the device
    (:meth:`MonitorPlayer.add_packet_listener`)."""

    #: ``video/H264``, ``audio/opus``, ``audio/PCMU`` or ``audio/PCMA``.
    mime: str
    #: An H.264 access unit (Annex B) or one audio frame.
    data: bytes
    #: RTP timestamp: 90 kHz for video, the codec's clock rate for audio.
    timestamp: int
    #: An IDR access unit (video only).
    keyframe: bool
    #: ``time.monotonic()`` on arrival.
    arrived: float


class MonitorPlayer(Connection):
    """IVMonitorPlayer: the device's live video and audio, talk back, resolution switch,
    snapshots and recording. Modules (the seed's 高级功能) may be replaced before play()."""

    kind = "monitor"

    def __init__(
        self,
        device_id: str,
        *,
        source_id: str | int | None = None,
        sdk: IoTVideo | None = None,
        definition: str = "low",
        relay_only: bool = False,
    ) -> None:
        super().__init__(device_id, source_id=source_id, sdk=sdk, relay_only=relay_only)
        if definition not in DEFINITIONS:
            raise _err(ErrorCode.IVPlayerError_InvalidParameter, "definition: low, mid or high")
        self.definition = definition
        self.video_decoder: VideoDecodable = VideoDecoder()
        self.audio_decoder: AudioDecodable = AudioDecoder()
        self.video_render: VideoRenderable = VideoRender()
        self.audio_render: AudioRenderable = AudioRender()
        self.av_recorder: AVRecordable = MP4Recorder()
        self.audio_capture: AudioCapturable = AudioCapture()
        self.audio_encoder: AudioEncodable = AudioEncoder()
        self.mute = False
        #: The latest decoded frame and its size.
        self.last_frame: av.VideoFrame | None = None
        self.video_size: tuple[int, int] = (0, 0)
        self.frames_decoded = 0
        self._frame_queues: list[asyncio.Queue[av.VideoFrame | None]] = []
        self._decode_failed: Callable[[], None] | None = None
        self._need_keyframe = True
        self._recording = False
        self._rec_worker: SerialWorker | None = None
        self._rec_skipping = False
        #: Video frames the recorder could not keep up with (skipped to a keyframe).
        self.frames_not_recorded = 0
        self._talk = Feed()
        self._audio_sender: Any = None
        self._video_sender: Any = None
        self._first_frame = asyncio.Event()
        #: Decode the video (frames(), snapshot(), the renderer); False passes it through
        #: only, to packet listeners and the recorder (a restreamer: no decoding at all).
        self.decode_video = True
        self._packet_listeners: list[Callable[[EncodedPacket], object]] = []

    # Encoded packets

    def add_packet_listener(
        self, listener: Callable[[EncodedPacket], object]
    ) -> Callable[[], None]:
        """Call ``listener`` (on the event loop, at once, so keep it short) with every
        encoded packet as it arrives: H.264 access units and audio frames, untouched.
        Returns the function that removes it."""
        self._packet_listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._packet_listeners.remove(listener)

        return remove

    def request_keyframe(self) -> None:
        """Ask the device for a keyframe now (an RTCP PLI); a camera whose encoder is its
        own sends its next one. Nothing happens when not connected."""
        if self._decode_failed is not None and self.connected:
            self._decode_failed()

    # Play / stop

    def _check_modules(self) -> None:
        """21030 for a module that does not implement its protocol (the seed's
        IVPlayerError_NoRespondsToSelector), before anything starts."""
        wanted: dict[str, type] = {
            "video_decoder": VideoDecodable,
            "audio_decoder": AudioDecodable,
            "video_render": VideoRenderable,
            "audio_render": AudioRenderable,
            "av_recorder": AVRecordable,
            "audio_capture": AudioCapturable,
            "audio_encoder": AudioEncodable,
        }
        for name, protocol in wanted.items():
            module = getattr(self, name, None)
            if not isinstance(module, protocol):
                raise _err(
                    ErrorCode.IVPlayerError_NoRespondsToSelector,
                    f"{name} ({type(module).__name__}) does not implement "
                    f"{protocol.__name__}; see iotvideo.app.modules",
                )

    @operation()
    async def play(self, *, timeout: float = 10.0, completion: Completion | None = None) -> None:
        """Connect and start receiving (the seed's play()); returns once connected.
        ``await wait_playing()`` for the first picture. 21030 when a module does not
        implement its protocol."""
        self._check_modules()
        self._need_keyframe = True
        self._first_frame.clear()
        self._video_worker = self._worker("video")
        self._audio_worker = self._worker("audio")
        await self.connect(timeout=timeout)

    @operation()
    async def wait_playing(
        self, timeout: float = 10.0, *, completion: Completion | None = None
    ) -> None:
        """Wait for the first decoded frame; raise the error if the connection ends."""
        ended = asyncio.ensure_future(self._ended.wait())
        first = asyncio.ensure_future(self._first_frame.wait())
        try:
            await asyncio.wait({ended, first}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            first.cancel()
        if not self._first_frame.is_set():
            raise self.error or _err(
                ErrorCode.IVPlayerError_AVInformationAbnormal, f"no picture in {timeout:g} s"
            )

    @operation()
    async def stop(self, *, completion: Completion | None = None) -> None:
        """Stop playing, talking and recording; disconnect (the seed's stop())."""
        if self._recording:
            with contextlib.suppress(IVError):
                await self.stop_recording()
        self._talk.close()
        close = getattr(self.audio_render, "close", None)
        if callable(close):
            close()
        await self.disconnect()

    # Media setup

    def _offer_fields(self) -> dict[str, Any]:
        return {"definition": self.definition}

    def _setup_media(self, pc: RTCPeerConnection) -> None:
        video = pc.addTransceiver("video", direction=self._video_direction())
        video.setCodecPreferences(codecs_of("video", "video/H264"))
        self._decode_failed = tap_receiver(video.receiver, self._on_encoded)
        self._video_sender = video.sender
        audio = pc.addTransceiver("audio", direction="sendrecv")
        audio.setCodecPreferences(
            codecs_of("audio", "audio/opus")
            + codecs_of("audio", "audio/PCMU")
            + codecs_of("audio", "audio/PCMA")
        )
        tap_receiver(audio.receiver, self._on_encoded)
        self._audio_sender = audio.sender

    def _video_direction(self) -> str:
        return "recvonly"

    def _on_connected(self) -> None:
        # The first picture may come before the data channels open.
        if not self._first_frame.is_set():
            self._set_status(PlayerStatus.LOADING)

    # What arrives

    def _on_encoded(self, mime: str, data: bytes, timestamp: int) -> None:
        if self._ended.is_set():
            return
        self._mark("first_packet")
        now = time.monotonic()
        if mime.lower() == "video/h264":
            self._on_video(data, timestamp, now)
        elif mime.lower().startswith("audio/"):
            self._on_audio(mime, data, timestamp, now)

    def _on_video(self, data: bytes, timestamp: int, now: float) -> None:
        keyframe = is_idr(data)
        if keyframe:
            self._mark("first_keyframe")
        if self._packet_listeners:
            self._tell_packet(EncodedPacket("video/H264", data, timestamp, keyframe, now))
        if self._recording and self._rec_worker is not None:
            self._record_video(data, timestamp, keyframe, now)
        if not self.decode_video:
            if keyframe and self.status is PlayerStatus.LOADING:
                self._set_status(PlayerStatus.PLAYING)
            return
        if self._need_keyframe and not keyframe:
            return
        self._need_keyframe = False
        loop = asyncio.get_running_loop()
        decoder = self.video_decoder
        failed = self._decode_failed

        def decode() -> None:
            try:
                frames = decoder.decode(data, timestamp)
            except av.FFmpegError:
                if failed is not None:
                    failed()  # the sender is asked for a keyframe
                return
            for frame in frames:
                loop.call_soon_threadsafe(self._on_frame, frame)

        if not self._video_worker.submit(decode):
            self._need_keyframe = True  # the decoder fell behind: skip to a keyframe
            if self._decode_failed is not None:
                self._decode_failed()

    def _on_frame(self, frame: av.VideoFrame) -> None:
        if self._ended.is_set():
            return
        self._mark("first_frame")
        self.frames_decoded += 1
        size = (frame.width, frame.height)
        if size != self.video_size:
            changed = self.video_size != (0, 0)
            self.video_size = size
            if changed:
                self._tell("player_did_change_size", self, *size)
        self.last_frame = frame
        if not self._first_frame.is_set():
            self._first_frame.set()
            if self.status is not PlayerStatus.PAUSED:  # paused before its first picture
                self._set_status(PlayerStatus.PLAYING)
        try:
            self.video_render.render(frame)
        except Exception:
            log.exception("video renderer failed")
        for queue in self._frame_queues:
            if queue.full():
                queue.get_nowait()  # a slow reader gets the newest frames
            queue.put_nowait(frame)

    def _tell_packet(self, packet: EncodedPacket) -> None:
        for listener in list(self._packet_listeners):
            try:
                listener(packet)
            except Exception:
                log.exception("packet listener failed")

    def _on_audio(self, mime: str, data: bytes, timestamp: int, now: float) -> None:
        try:
            codec = codec_of_mime(mime)
        except ValueError:
            return
        if self._packet_listeners:
            self._tell_packet(EncodedPacket(mime, data, timestamp, False, now))
        if self._recording and self._rec_worker is not None:
            rate = 48_000 if codec == "opus" else 8_000
            self._rec_worker.submit(self.av_recorder.write_audio, data, timestamp, rate, now)
        if self.mute:
            return
        loop = asyncio.get_running_loop()
        decoder = self.audio_decoder

        def decode() -> None:
            samples = decoder.decode(mime, data)
            if samples.size:
                loop.call_soon_threadsafe(self._on_samples, samples)

        self._audio_worker.submit(decode)

    def _on_samples(self, samples: np.ndarray) -> None:
        if not self.mute and not self._ended.is_set():
            try:
                self.audio_render.render(samples)
            except Exception:
                log.exception("audio renderer failed")

    async def frames(self, *, maxsize: int = 30) -> AsyncIterator[av.VideoFrame]:
        """Decoded frames as they arrive (a slow reader gets the newest), until the
        connection ends (stop, the device hangs up, the connection is lost); at once
        when it has ended already."""
        if self.status in (PlayerStatus.STOPPED, PlayerStatus.FAILED):
            return
        queue: asyncio.Queue[av.VideoFrame | None] = asyncio.Queue(maxsize)
        self._frame_queues.append(queue)
        try:
            while (frame := await queue.get()) is not None:
                yield frame
        finally:
            self._frame_queues.remove(queue)

    def _end_frames(self) -> None:
        for queue in self._frame_queues:
            if queue.full():
                queue.get_nowait()  # the end must get in: a reader waits for it
            queue.put_nowait(None)

    # Snapshot and recording

    @operation()
    async def snapshot(
        self,
        path: str | Path | None = None,
        *,
        fmt: str = "jpeg",
        timeout: float = 10.0,
        completion: Completion | None = None,
    ) -> bytes:
        """The current picture as JPEG or PNG bytes (the format from ``path``'s suffix when
        given), written to ``path`` too. Right after ``play()`` it waits for the first
        picture (as ``wait_playing()``); 21040 when the player is not playing."""
        if self.last_frame is None and self.connected:
            await self.wait_playing(timeout)
        return await picture_of(self.last_frame, path, fmt)

    @property
    def recording(self) -> bool:
        return self._recording

    @operation()
    async def start_recording(
        self, path: str | Path, *, completion: Completion | None = None
    ) -> None:
        """Record what arrives to an MP4 at ``path`` (no re-encoding); 21034 when already
        recording, 21040 before the connection is up."""
        if self._recording:
            raise _err(ErrorCode.IVPlayerError_RecorderIsRunning, "already recording")
        if not self.connected:
            raise _err(ErrorCode.IVPlayerError_OperationNotAllowedNow, "play() first")
        audio = self.answer.get("audio", {}).get("codec")
        width, height = self.video_size
        video = self.answer.get("video") or {}
        width, height = width or video.get("width", 0), height or video.get("height", 0)
        worker = self._worker("record")
        done = asyncio.get_running_loop().create_future()

        def start() -> None:
            try:
                self.av_recorder.start(path, width=width, height=height, audio=audio)
                done.get_loop().call_soon_threadsafe(done.set_result, None)
            except Exception as exc:
                done.get_loop().call_soon_threadsafe(done.set_exception, exc)

        worker.submit(start)
        try:
            await done
        except Exception as exc:
            worker.close()
            raise _err(ErrorCode.IVPlayerError_RecorderNotAvailableNow, str(exc)) from exc
        self._rec_worker = worker
        self._recording = True
        if self._decode_failed is not None:
            self._decode_failed()  # a keyframe soon, so the file starts soon

    def _record_video(self, data: bytes, timestamp: int, keyframe: bool, now: float) -> None:
        """Queue a frame for the recorder. When the recorder falls behind, frames are
        skipped up to the next keyframe (a frame without those before it would not
        decode), counted in :attr:`frames_not_recorded` and logged once per gap."""
        assert self._rec_worker is not None
        if self._rec_skipping and not keyframe:
            self.frames_not_recorded += 1
            return
        if self._rec_worker.submit(self.av_recorder.write_video, data, timestamp, keyframe, now):
            self._rec_skipping = False
            return
        self.frames_not_recorded += 1
        if not self._rec_skipping:
            log.warning("recorder of %s fell behind; skipping to the next keyframe", self.device_id)
        self._rec_skipping = True

    @operation()
    async def stop_recording(self, *, completion: Completion | None = None) -> Path | None:
        """Finish the recording; the file's path (None if nothing was recorded)."""
        if not self._recording or self._rec_worker is None:
            raise _err(ErrorCode.IVPlayerError_RecorderNotAvailableNow, "not recording")
        self._recording = False
        worker, self._rec_worker = self._rec_worker, None
        done: asyncio.Future[Path | None] = asyncio.get_running_loop().create_future()

        def stop() -> None:
            try:
                path = self.av_recorder.stop()
                done.get_loop().call_soon_threadsafe(done.set_result, path)
            except Exception as exc:
                done.get_loop().call_soon_threadsafe(done.set_exception, exc)

        # After every frame already queued, even when the queue is full (a dropped stop
        # would leave the MP4 unfinished and this call waiting for ever).
        await asyncio.to_thread(worker.close_after, stop)
        return await done

    # Resolution

    @operation()
    async def switch_definition(
        self, definition: str, *, timeout: float = 5.0, completion: Completion | None = None
    ) -> tuple[int, int]:
        """Ask the device for another definition (low, mid, high) without reconnecting;
        the new size. Frames of the new size follow."""
        if definition not in DEFINITIONS:
            raise _err(ErrorCode.IVPlayerError_InvalidParameter, "definition: low, mid or high")
        reply = await self._control_request(
            "definition", "definition.done", timeout, value=definition
        )
        self.definition = definition
        return int(reply.get("width", 0)), int(reply.get("height", 0))

    # Talking

    @property
    def talking(self) -> bool:
        return self._talk.stream is not None

    @operation()
    async def start_talking(
        self, capture: AudioCapturable | None = None, *, completion: Completion | None = None
    ) -> None:
        """Send audio to the device's speaker from ``capture`` (default: the
        ``audio_capture`` module, a microphone)."""
        if not self.connected or self._audio_sender is None:
            raise _err(ErrorCode.IVPlayerError_OperationNotAllowedNow, "play() first")
        if self.talking:
            return
        source = capture or self.audio_capture
        encoder = self.audio_encoder
        codec = self._talk_codec()
        if encoder.codec != codec:
            if not isinstance(encoder, AudioEncoder):
                raise _err(
                    ErrorCode.IVPlayerError_EncoderNotAvailableNow,
                    f"the audio encoder makes {encoder.codec}; the device talks {codec}",
                )
            encoder.audio_type = codec  # the built-in follows what was negotiated
        stream = AudioStream(
            source.chunks, codec, f"talk-{self.device_id}", encoder=lambda: encoder
        )
        self._talk.switch(stream)
        self._audio_sender.replaceTrack(self._talk.track("audio"))

    def _talk_codec(self) -> str:
        """The audio codec negotiated with the device (talk is sent in it)."""
        pc = self._pc
        if pc is not None:
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "audio" and transceiver._codecs:
                    return codec_of_mime(transceiver._codecs[0].mimeType)
        return str(self.answer.get("audio", {}).get("codec", "opus"))

    @operation()
    async def stop_talking(self, *, completion: Completion | None = None) -> None:
        """Stop sending audio."""
        if self._audio_sender is not None and self.talking:
            self._audio_sender.replaceTrack(None)
        self._talk.close()


class LivePlayer(MonitorPlayer):
    """IVLivePlayer: a two-way video call; the app's camera goes to the device.

    ``cameras`` lists the capture modules ``switch_camera`` cycles through (built-in:
    two test cameras); ``on_preview`` gets each captured picture (RGB ndarray).
    """

    kind = "live"

    def __init__(self, device_id: str, **kwargs: Any) -> None:
        super().__init__(device_id, **kwargs)
        self.cameras: list[VideoCapturable] = [TestCamera(0), TestCamera(1)]
        self.video_encoder: VideoEncodable = VideoEncoder()
        self.capture_fps = 15.0
        self.on_preview: Callable[[np.ndarray], object] | None = None
        self.camera_index = 0
        self._camera = Feed()

    @property
    def video_capture(self) -> VideoCapturable:
        """The camera in use (the seed's videoCapture)."""
        return self.cameras[self.camera_index]

    @video_capture.setter
    def video_capture(self, capture: VideoCapturable) -> None:
        self.cameras[self.camera_index] = capture

    @property
    def capture_definition(self) -> str:
        """The definition the app's camera is sent at (the seed's
        videoCapture.definition): the capture module's ``definition``, low without one."""
        return str(getattr(self.video_capture, "definition", "low"))

    @capture_definition.setter
    def capture_definition(self, value: str) -> None:
        if value not in DEFINITIONS:
            raise _err(ErrorCode.IVPlayerError_InvalidParameter, "definition: low, mid or high")
        for camera in self.cameras:
            if hasattr(camera, "definition"):
                camera.definition = value

    def _video_direction(self) -> str:
        return "sendrecv"

    def _check_modules(self) -> None:
        super()._check_modules()
        for name, module, protocol in (
            ("video_capture", self.video_capture, VideoCapturable),
            ("video_encoder", self.video_encoder, VideoEncodable),
        ):
            if not isinstance(module, protocol):
                raise _err(
                    ErrorCode.IVPlayerError_NoRespondsToSelector,
                    f"{name} ({type(module).__name__}) does not implement {protocol.__name__}",
                )

    @operation()
    async def open_camera(self, *, completion: Completion | None = None) -> None:
        """Start sending the current camera's pictures to the device."""
        if not self.connected or self._video_sender is None:
            raise _err(ErrorCode.IVPlayerError_OperationNotAllowedNow, "play() first")
        if self._camera.stream is None:
            self._camera.switch(self._camera_stream())
            self._video_sender.replaceTrack(self._camera.track("video"))

    def _camera_stream(self) -> EncodedVideoStream:
        """The current camera's pictures, encoded once; on the clock of the previous
        camera's, so timestamps carry on across a switch."""
        definition = self.capture_definition
        width, height = DEFINITIONS[definition if definition in DEFINITIONS else "low"]
        encoder = self.video_encoder
        previous = self._camera.stream
        return EncodedVideoStream(
            self.video_capture.frames,
            width,
            height,
            fps=self.capture_fps,
            bitrate=400_000,
            epoch=previous.epoch if isinstance(previous, EncodedVideoStream) else None,
            name=f"camera-{self.device_id}",
            encoder=lambda: encoder,
            on_picture=self._preview,
        )

    def _preview(self, image: np.ndarray) -> None:
        if self.on_preview is not None:
            try:
                self.on_preview(image)
            except Exception:
                log.exception("preview callback failed")

    @operation()
    async def switch_camera(self, *, completion: Completion | None = None) -> None:
        """Switch to the next camera in ``cameras`` (front/back)."""
        self.camera_index = (self.camera_index + 1) % len(self.cameras)
        if self._camera.stream is not None:
            self._camera.switch(self._camera_stream())

    @operation()
    async def close_camera(self, *, completion: Completion | None = None) -> None:
        """Stop sending pictures."""
        if self._video_sender is not None and self._camera.stream is not None:
            self._video_sender.replaceTrack(None)
        self._camera.close()

    @operation()
    async def stop(self, *, completion: Completion | None = None) -> None:
        await self.close_camera()
        await super().stop()


async def picture_of(frame: av.VideoFrame | None, path: str | Path | None, fmt: str) -> bytes:
    """A player's snapshot: ``frame`` as JPEG or PNG (the format from ``path``'s suffix
    when given), written to ``path`` too; 21040 when there is no picture yet."""
    if frame is None:
        raise _err(ErrorCode.IVPlayerError_OperationNotAllowedNow, "no picture yet")
    if path is not None:
        fmt = Path(path).suffix or fmt
    data = await asyncio.to_thread(encode_picture, frame, fmt)
    if path is not None:
        await asyncio.to_thread(Path(path).write_bytes, data)
    return data
