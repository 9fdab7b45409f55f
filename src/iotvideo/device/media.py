"""The device's media: answer the app's WebRTC offers and serve its sources.

::

    device = DeviceClient(certificate, cloud_url)
    media = await DeviceMedia.open(device, video="rtsp://192.168.1.20/stream1", audio="tone:440")
    media.on_data = lambda session, data: session.send(b"pong")
    await device.start()

Each source (``"1"`` by default; several for an NVR, ``sources={"1": ..., "2": ...}``)
has one reader or encoder per stream, fanned out to all viewers. At most ``max_viewers``
watch at once (more get 20007). Talk audio from the app goes to ``talk_sink`` (a callback
taking int16 mono 48 kHz samples, or a directory for WAV files); the app's camera (two-way
video) to ``on_video``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from iotvideo.device.card import LIST_VERSION, Card, CardRecorder
from iotvideo.device.client import DeviceClient
from iotvideo.device.playback import Download, PlaybackStream
from iotvideo.media.audio import CODECS, AudioDecoder, TalkSink, WavSink, codec_of_mime
from iotvideo.media.h264 import H264Decoder
from iotvideo.media.sources import (
    AudioStream,
    Feed,
    SourceError,
    VideoSource,
    open_audio,
    open_video,
)
from iotvideo.media.webrtc import (
    RTCPeerConnection,
    RTCSessionDescription,
    answer_with,
    ice_servers,
    is_mdns_candidate,
    parse_candidate,
    remote_sdp,
    resolves_mdns,
    rtc_configuration,
    tap_receiver,
)
from iotvideo.media.worker import SerialWorker
from iotvideo.protocol import media as wire
from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = ["Channel", "DeviceMedia", "MediaSession"]

log = logging.getLogger("iotvideo.device.media")


@dataclass
class Channel:
    """One source of the device (a camera; an NVR has several)."""

    video: VideoSource
    audio: AudioStream | None


#: Seconds an answered session has to connect (ICE and DTLS) before it is closed and its
#: viewer place freed: an app that never connects must not hold a place for ever.
CONNECT_TIMEOUT = 30.0


def _bad(message: str) -> IVError:
    return IVError.of(ErrorCode.IVTermErr_msg_user_cmd_param_error, message)


class MediaSession:
    """One app's connection to this device."""

    def __init__(
        self, media: DeviceMedia, pc: RTCPeerConnection, kind: str, source_id: str, peer: str
    ) -> None:
        self.media, self.pc, self.kind = media, pc, kind
        self.source_id, self.peer = source_id, peer
        self.id = next(media._ids)
        self.definition = "low"
        #: What this session sends: the source's video (at its definition) and audio.
        self.video = Feed(on_end=self._source_ended)
        self.audio = Feed()
        self.closed = asyncio.Event()
        self._ctl: Any = None
        self._data: Any = None
        self._workers: list[SerialWorker] = []
        self._talk: TalkSink | None = None
        self._wav: WavSink | None = None
        self._talk_pipe: tuple[AudioDecoder, SerialWorker] | None = None
        self._video_pipe: tuple[H264Decoder, SerialWorker] | None = None
        #: Asks the app for a keyframe (set when the app's video is tapped).
        self.decode_failed: Callable[[], None] | None = None
        #: Talk audio samples received so far, and app video frames received.
        self.talk_samples = 0
        self.video_frames = 0
        #: The played-back stream (kind playback) and the download (kind download).
        self.playback: PlaybackStream | None = None
        self.download: Download | None = None

    @property
    def channel(self) -> Channel:
        return self.media.channels[self.source_id]

    # Custom data

    def send(self, data: bytes) -> None:
        """Send custom data to the app (at most MAX_PKG_BYTES)."""
        if len(data) > wire.MAX_PKG_BYTES:
            raise IVError.of(
                ErrorCode.IVConnError_ExceedsMaxLength,
                f"data longer than MAX_PKG_BYTES ({wire.MAX_PKG_BYTES})",
            )
        if self._data is None or self._data.readyState != "open":
            raise IVError.of(ErrorCode.IVConnError_Disconnected, "the connection is not open")
        self._data.send(bytes(data))

    # Video

    def start_video(self, definition: str) -> None:
        self.definition = definition
        self.video.switch(self.channel.video.stream(definition))

    def switch_definition(self, definition: str) -> dict[str, Any]:
        """Move this viewer to the stream of ``definition``; it starts at a keyframe."""
        stream = self.channel.video.stream(definition)
        self.definition = definition
        self.video.switch(stream)
        info = stream.info
        return {"value": definition, "width": info.width, "height": info.height}

    def _source_ended(self) -> None:
        """The source stopped by itself (a camera that went away): tell the app."""
        stream = self.video.stream
        if self.closed.is_set() or stream is None:
            return
        why = stream.error or "the stream ended"
        log.warning("session %s: source %s ended: %s", self.id, self.source_id, why)
        self.media._spawn(
            self.close(
                ErrorCode.IVTermErr_msg_calling_dev_hangup, f"source {self.source_id}: {why}"
            )
        )

    # From the app: talk audio, video (two-way), control, data

    def on_remote_frame(self, mime: str, data: bytes, timestamp: int) -> None:
        if mime.lower().startswith("audio/"):
            self._on_talk(mime, data)
        elif mime.lower() == "video/h264":
            self._on_app_video(data, timestamp)

    def _on_talk(self, mime: str, data: bytes) -> None:
        if self._talk_pipe is None:
            try:
                decoder = AudioDecoder(codec_of_mime(mime))
            except ValueError:
                return
            self._talk_pipe = (decoder, self._worker("talk"))
            self._talk = self.media.talk_sink_for(self)
        decoder, worker = self._talk_pipe
        loop = asyncio.get_running_loop()

        def decode() -> None:
            samples = decoder.decode(data)
            if samples.size:
                loop.call_soon_threadsafe(self._deliver_talk, samples)

        worker.submit(decode)

    def _deliver_talk(self, samples: np.ndarray) -> None:
        self.talk_samples += samples.size
        if self._talk is not None:
            try:
                self._talk(samples)
            except Exception:
                log.exception("talk sink failed")

    def _on_app_video(self, data: bytes, timestamp: int) -> None:
        if self._video_pipe is None:
            self._video_pipe = (H264Decoder(), self._worker("app-video"))
        decoder, worker = self._video_pipe
        loop = asyncio.get_running_loop()
        failed = self.decode_failed

        def decode() -> None:
            try:
                frames = decoder.decode(data, timestamp)
            except av.FFmpegError:
                if failed is not None:
                    failed()  # ask the app's encoder for a keyframe
                return
            for frame in frames:
                loop.call_soon_threadsafe(self._deliver_video, frame)

        worker.submit(decode)

    def _deliver_video(self, frame: av.VideoFrame) -> None:
        self.video_frames += 1
        if self.media.on_video is not None:
            try:
                self.media.on_video(self, frame)
            except Exception:
                log.exception("on_video failed")

    def on_channel(self, channel: Any) -> None:
        if channel.label == wire.CONTROL_CHANNEL:
            self._ctl = channel
            channel.on("message", self._on_control)
        elif channel.label == wire.DATA_CHANNEL:
            self._data = channel
            channel.on("message", self._on_data)
        elif channel.label == wire.FILE_CHANNEL and self.download is not None:
            self.download.on_channel(channel)

    def _on_control(self, message: str | bytes) -> None:
        try:
            request = wire.parse_control(message)
        except ValueError as exc:
            log.info("session %s: %s", self.id, exc)
            return
        op = request["op"]
        if op == "definition":
            try:
                reply = self.switch_definition(str(request.get("value")))
                self._control("definition.done", **reply)
            except SourceError as exc:
                self._control(
                    "error", code=int(ErrorCode.IVPlayerError_InvalidParameter), msg=str(exc)
                )
        elif op == "keyframe":
            self.video.keyframe_wanted()
        elif op == "ping":  # the app checks that the session lives on without the link
            self._control("pong")
        elif op in ("seek", "pause", "resume", "speed") and self.playback is not None:
            self.media._spawn(self._playback_control(op, request))
        elif op in ("download", "download.pause") and self.download is not None:
            self.media._spawn(self._download_control(op, request))

    async def _playback_control(self, op: str, request: dict[str, Any]) -> None:
        stream = self.playback
        assert stream is not None
        try:
            if op == "seek":
                at = _number(request.get("time"), "time")
                landed = await asyncio.wait_for(asyncio.wrap_future(stream.seek(int(at))), 10)
                self._control("seek.done", time=landed)
            elif op == "pause":
                held = await asyncio.wait_for(asyncio.wrap_future(stream.pause()), 10)
                self._control("pause.done", time=held)
            elif op == "resume":
                stream.resume()
                self._control("resume.done", time=stream.position)
            else:
                speed = _speed(request.get("value"))
                stream.set_speed(speed)
                self._control("speed.done", value=speed)
        except IVError as exc:
            self._control("error", code=exc.code, msg=exc.message)
        except (TimeoutError, asyncio.CancelledError):
            self._control(
                "error", code=int(ErrorCode.IVPlayerError_DeviceOperationFailed), msg=f"{op} failed"
            )

    async def _download_control(self, op: str, request: dict[str, Any]) -> None:
        download = self.download
        assert download is not None
        if op == "download.pause":
            download.pause()
            return
        try:
            file_time = int(_number(request.get("file_time"), "file_time"))
            offset = int(_number(request.get("offset", 0), "offset"))
            ready = await download.start(file_time, offset)
            self._control("download.ready", **ready)
        except IVError as exc:
            self._control("error", code=exc.code, msg=exc.message)
            download.start_idle()  # the idle clock runs again after a refused request

    def _control(self, op: str, **fields: Any) -> None:
        if self._ctl is not None and self._ctl.readyState == "open":
            self._ctl.send(wire.control(op, **fields))

    def _on_data(self, message: str | bytes) -> None:
        data = message.encode() if isinstance(message, str) else message
        handler = self.media.on_data
        if handler is None:
            return
        try:
            result = handler(self, data)
            if asyncio.iscoroutine(result):
                self.media._spawn(result)
        except Exception:
            log.exception("on_data failed")

    # Lifecycle

    def _worker(self, what: str) -> SerialWorker:
        worker = SerialWorker(f"session{self.id}-{what}")
        self._workers.append(worker)
        return worker

    async def close(self, code: int = 0, msg: str = "") -> None:
        """End the session; ``code`` (e.g. 20002) tells the app why."""
        if self.closed.is_set():
            return
        self.closed.set()
        if code:
            self._control("bye", code=code, msg=msg)
            await self._flush_control()
        self._release()
        await self.pc.close()

    async def _flush_control(self, timeout: float = 0.5) -> None:
        """Let the bye go out before the connection closes (closing drops what is queued,
        and the app would see a lost connection instead of the reason)."""
        ctl = self._ctl
        if ctl is None or ctl.readyState != "open":
            return
        if ctl.bufferedAmount > ctl.bufferedAmountLowThreshold:
            drained = asyncio.Event()
            ctl.once("bufferedamountlow", drained.set)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await drained.wait()
        await asyncio.sleep(0.01)  # one more turn: the transport sends what it took

    def _release(self) -> None:
        if self.download is not None:
            self.download.close()
        self.video.close()
        self.audio.close()
        for worker in self._workers:
            worker.close()
        if self._wav is not None:
            self._wav.close()
        self.media.sessions.discard(self)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IVError.of(ErrorCode.IVPlayerError_InvalidParameter, f"{name} must be a number")
    return float(value)


def _speed(value: Any) -> float:
    speed = _number(value, "speed")
    if not wire.MIN_SPEED <= speed <= wire.MAX_SPEED:
        raise IVError.of(
            ErrorCode.IVPlayerError_InvalidParameter,
            f"speed must be {wire.MIN_SPEED:g}..{wire.MAX_SPEED:g}",
        )
    return speed


def open_channels(sources: dict[str, tuple[str, str]]) -> dict[str, Channel]:
    """Open each source's video and audio (blocking: probes files and cameras)."""
    return {sid: Channel(open_video(v), open_audio(a)) for sid, (v, a) in sources.items()}


class DeviceMedia:
    """Serves ``media.offer`` for ``device``: sources, viewers, talk, two-way video, data."""

    def __init__(
        self,
        device: DeviceClient,
        *,
        video: str = "testsrc:",
        audio: str = "tone:440",
        sources: dict[str, tuple[str, str]] | None = None,
        max_viewers: int = wire.DEFAULT_MAX_VIEWERS,
        talk_sink: TalkSink | str | Path | None = None,
        on_video: Callable[[MediaSession, av.VideoFrame], object] | None = None,
        on_data: Callable[[MediaSession, bytes], object] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        channels: dict[str, Channel] | None = None,
        card: Card | None = None,
        card_source: str | None = None,
        download_idle_timeout: float = 10.0,
        download_rate: float | None = None,
        card_recording: bool = True,
        cards: dict[str, Card] | None = None,
    ) -> None:
        """Serve ``device``'s media. The sources are opened here, which blocks while a file
        or an RTSP camera is probed (up to 10 s): on an event loop use :meth:`open`.
        ``channels`` (from :meth:`open`) are sources already opened. With ``card`` (a
        mounted :class:`~iotvideo.device.card.Card`), source ``card_source`` (default the
        first) is recorded onto it for as long as this runs, and apps can list, play back
        and download its recordings (construct it in a running event loop);
        ``download_rate`` caps a download's bytes a second; ``card_recording=False`` serves
        the card's recordings without adding to them (the user turned recording off).
        ``cards`` gives several channels a card each (an NVR): source id -> card.
        ``max_viewers`` is per channel."""
        self.device = device
        self.max_viewers = max_viewers
        #: Seconds an answered session has to connect before its place is freed.
        self.connect_timeout = connect_timeout
        self.talk_sink = talk_sink
        self.on_video = on_video
        self.on_data = on_data
        self.channels: dict[str, Channel] = (
            channels if channels is not None else open_channels(sources or {"1": (video, audio)})
        )
        self.sessions: set[MediaSession] = set()
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        device.add_op("media.offer", self._offer)
        device.add_op("media.close", self._close_session)
        device.add_op("media.candidate", self._add_candidate)
        #: The memory cards by the source each records, and their recorders.
        self.cards: dict[str, Card] = dict(cards or {})
        if card is not None:
            self.cards[card_source or next(iter(self.channels))] = card
        self.card_recorders: dict[str, CardRecorder] = {}
        #: Seconds a download session waits for the next request (then 20136).
        self.download_idle_timeout = download_idle_timeout
        #: Bytes a second a download may take (None: as fast as the connection goes).
        self.download_rate = download_rate
        #: The download sending a file now (one per device).
        self.download_owner: Download | None = None
        for source in self.cards:
            if source not in self.channels:
                raise ValueError(f"no source {source!r} to record")
            if card_recording:
                self.record(source)
        if self.cards:
            self._serve_cards()

    def _serve_cards(self) -> None:
        self.device.add_op("card.days", self._card_days)
        self.device.add_op("card.list", self._card_list)

    def add_channel(self, source: str, channel: Channel) -> None:
        """Serve one more channel (an NVR's camera that came up)."""
        self.channels[source] = channel

    async def remove_channel(self, source: str) -> None:
        """Stop serving a channel: hang up its sessions (20002), finish its card's file,
        stop its streams. Its card stays mounted for the caller to close."""
        for session in [s for s in self.sessions if s.source_id == source]:
            await session.close(ErrorCode.IVTermErr_msg_calling_dev_hangup)
        recorder = self.card_recorders.pop(source, None)
        if recorder is not None:
            await recorder.stop()
        self.cards.pop(source, None)
        channel = self.channels.pop(source, None)
        if channel is not None:
            channel.video.stop()
            if channel.audio is not None:
                channel.audio.stop()

    def add_card(self, source: str, card: Card, *, recording: bool = True) -> None:
        """Give channel ``source`` a memory card (in a running event loop): apps list, play
        and download its recordings; with ``recording``, it records around the clock."""
        first = not self.cards
        self.cards[source] = card
        if recording:
            self.record(source)
        if first:
            self._serve_cards()

    def record(self, source: str) -> CardRecorder:
        """Start recording ``source`` onto its card (in a running event loop)."""
        card, channel = self.cards[source], self.channels[source]
        recorder = CardRecorder(
            card, channel.video.stream(card.definition), channel.audio, clock=self.device.now
        )
        recorder.start()
        self.card_recorders[source] = recorder
        return recorder

    @property
    def card(self) -> Card | None:
        """The first channel's card (a camera's only one)."""
        return next(iter(self.cards.values()), None)

    @property
    def card_source(self) -> str:
        return next(iter(self.cards), next(iter(self.channels)))

    @property
    def card_recorder(self) -> CardRecorder | None:
        return self.card_recorders.get(self.card_source)

    @property
    def viewers(self) -> int:
        """Viewing sessions, all channels together."""
        return sum(1 for s in self.sessions if s.kind not in wire.NON_VIEWING)

    def viewers_of(self, source: str) -> int:
        """Viewing sessions of one channel (``max_viewers`` is per channel)."""
        return sum(
            1 for s in self.sessions if s.kind not in wire.NON_VIEWING and s.source_id == source
        )

    def _need_card(
        self,
        source: Any = None,
        code: ErrorCode = ErrorCode.IVTermErr_msg_find_record_file_fail,
    ) -> Card:
        if not self.cards:
            raise IVError.of(code, "this device has no memory card")
        key = self.card_source if source in (None, "") else str(source)
        card = self.cards.get(key)
        if card is None:
            raise IVError.of(
                ErrorCode.IVPlayerError_InvalidParameter,
                f"source {source!r} is not recorded; the cards hold sources "
                f"{', '.join(self.cards)}",
            )
        return card

    async def _card_days(self, data: dict[str, Any]) -> dict[str, Any]:
        """card.days: the days of ``month`` (YYYY-MM) with recordings, in the app's time
        zone (``tz``, minutes east of UTC)."""
        card = self._need_card(data.get("source"))
        month, tz = data.get("month"), data.get("tz", 0)
        try:
            year, mon = (int(part) for part in str(month).split("-"))
            if not (1970 <= year <= 9999 and 1 <= mon <= 12) or isinstance(tz, bool):
                raise ValueError
            tz = int(tz)
        except (TypeError, ValueError):
            raise _bad("month is YYYY-MM and tz minutes east of UTC") from None
        if not -840 <= tz <= 840:
            raise _bad("tz must be -840..840 minutes")
        days = await asyncio.to_thread(card.days, year, mon, tz)
        return {"version": LIST_VERSION, "month": f"{year:04d}-{mon:02d}", "days": days}

    async def _card_list(self, data: dict[str, Any]) -> dict[str, Any]:
        """card.list: the recording files overlapping ``start``..``end`` (UNIX ms), oldest
        first, ``size`` a page (1..500), page ``page`` (from 0)."""
        card = self._need_card(data.get("source"))
        values = {
            k: data.get(k, d)
            for k, d in (("start", 0), ("end", 1 << 62), ("page", 0), ("size", 100))
        }
        if any(isinstance(v, bool) or not isinstance(v, int) for v in values.values()):
            raise _bad("start, end, page and size are integers")
        start, end, page, size = values["start"], values["end"], values["page"], values["size"]
        if start < 0 or end <= start or page < 0 or not 1 <= size <= 500:
            raise _bad("0 <= start < end, page >= 0, size 1..500")
        files, total = await asyncio.to_thread(card.page, start, end, page * size, size)
        return {
            "version": LIST_VERSION,
            "items": [f.item() for f in files],
            "total": total,
            "page": page,
            "pages": (total + size - 1) // size,
        }

    def talk_sink_for(self, session: MediaSession) -> TalkSink | None:
        sink = self.talk_sink
        if sink is None or callable(sink):
            return sink
        folder = Path(sink)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"talk-{time.strftime('%Y%m%d-%H%M%S')}-{session.id}.wav"
        session._wav = WavSink(folder / name)
        return session._wav

    async def close(self) -> None:
        """Hang up every session (the apps get 20002), finish the card's file being
        written, and stop the sources."""
        for session in list(self.sessions):
            await session.close(ErrorCode.IVTermErr_msg_calling_dev_hangup)
        recorders, self.card_recorders = self.card_recorders, {}
        for recorder in recorders.values():
            await recorder.stop()
        for channel in self.channels.values():
            channel.video.stop()
            if channel.audio is not None:
                channel.audio.stop()

    @classmethod
    async def open(
        cls,
        device: DeviceClient,
        *,
        video: str = "testsrc:",
        audio: str = "tone:440",
        sources: dict[str, tuple[str, str]] | None = None,
        **options: Any,
    ) -> DeviceMedia:
        """Open the sources off the event loop (probing blocks), then serve; raises
        :class:`SourceError` for a source that cannot be used. ``options`` as for the
        constructor (max_viewers, talk_sink, on_video, on_data, connect_timeout)."""
        channels = await asyncio.to_thread(open_channels, sources or {"1": (video, audio)})
        return cls(device, channels=channels, **options)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_or_close(self, session: MediaSession) -> None:
        """Close ``session`` if it is not connected within :attr:`connect_timeout`."""
        connected = asyncio.Event()
        pc = session.pc

        @pc.on("connectionstatechange")
        def changed() -> None:
            if pc.connectionState == "connected":
                connected.set()

        if pc.connectionState == "connected":
            return
        try:
            async with asyncio.timeout(self.connect_timeout):
                await connected.wait()
        except TimeoutError:
            if not session.closed.is_set():
                log.info(
                    "session %s with %s did not connect in %g s; closing it",
                    session.id,
                    session.peer,
                    self.connect_timeout,
                )
                await session.close(
                    ErrorCode.IVTermErr_msg_calling_timeout_disconnect, "never connected"
                )

    async def _offer(self, data: dict[str, Any]) -> dict[str, Any]:
        sdp, kind = data.get("sdp"), data.get("kind", "monitor")
        if not isinstance(sdp, str) or kind not in wire.KINDS:
            raise _bad("an offer needs sdp and a kind of " + ", ".join(wire.KINDS))
        if not self.channels:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_calling_dev_hangup, "no camera of this device is up"
            )
        recorded = kind in ("playback", "download") and self.cards
        default = self.card_source if recorded else next(iter(self.channels))
        source_id = str(data.get("source") or default)
        if source_id not in self.channels:
            raise IVError.of(
                ErrorCode.IVPlayerError_InvalidParameter,
                f"no source {source_id!r}; this device has {', '.join(self.channels)}",
            )
        definition = str(data.get("definition") or "low")
        if definition not in wire.DEFINITIONS:
            raise IVError.of(ErrorCode.IVPlayerError_InvalidParameter, "unknown definition")
        playback: PlaybackStream | None = None
        if kind == "playback":
            playback = await self._playback_stream(source_id, data)
        elif kind == "download":
            self._need_card(source_id, code=ErrorCode.IVDownloadError_FileNotFound)
        if kind not in wire.NON_VIEWING and self.viewers_of(source_id) >= self.max_viewers:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_calling_all_chn_busy,
                f"all {self.max_viewers} viewing channels of source {source_id} are busy",
            )
        servers = ice_servers(data.get("ice_servers") or [])
        pc = RTCPeerConnection(rtc_configuration(servers))
        session = MediaSession(self, pc, kind, source_id, str(data.get("from", "")))
        session.playback = playback
        if kind == "download":
            session.download = Download(session, self._need_card(source_id))
        self.sessions.add(session)
        try:
            return await self._answer(session, sdp, definition)
        except Exception:
            session._release()
            await pc.close()
            raise

    async def _close_session(self, data: dict[str, Any]) -> dict[str, Any]:
        """media.close: end one of the asker's sessions (a WHEP DELETE)."""
        number, asker = data.get("session"), str(data.get("from", ""))
        for session in list(self.sessions):
            if session.id == number and session.peer == asker:
                await session.close()
                return {}
        raise _bad(f"no session {number} of yours")

    async def _add_candidate(self, data: dict[str, Any]) -> dict[str, Any]:
        """media.candidate: an ICE candidate the asker trickled after its offer (``""``
        ends them). Answered at once: an mDNS name (``xxxx.local``) resolves meanwhile."""
        number, asker = data.get("session"), str(data.get("from", ""))
        session = next((s for s in self.sessions if s.id == number and s.peer == asker), None)
        if session is None:
            raise _bad(f"no session {number} of yours")
        line, mid, index = data.get("candidate"), data.get("mid"), data.get("index")
        if (
            not isinstance(line, str)
            or len(line) > 512
            or not (mid is None or isinstance(mid, str))
            or not (index is None or (isinstance(index, int) and not isinstance(index, bool)))
        ):
            raise _bad("a candidate is text (at most 512 characters) with a mid or an index")
        try:
            candidate = parse_candidate(line, mid, index)
        except ValueError as exc:
            raise _bad(f"bad candidate: {exc}") from None
        if candidate is not None and candidate.protocol.lower() != "udp":
            return {}  # ICE over TCP is not spoken here; the UDP candidates serve
        if is_mdns_candidate(candidate) and not resolves_mdns():
            return {}  # ICE held to loopback: the peer's own checks make the pair

        async def add() -> None:
            try:
                await session.pc.addIceCandidate(candidate)
            except Exception as exc:  # the session closed meanwhile, or candidates ended
                log.info("session %s: candidate not added: %s", session.id, exc)

        self._spawn(add())
        return {}

    async def _playback_stream(self, source_id: str, data: dict[str, Any]) -> PlaybackStream:
        """The stream of a playback offer (``at`` ms, ``speed``): 20137 when the card has
        nothing at or after ``at``, 21031 for a speed outside 0.5..32."""
        card = self._need_card(source_id)
        at = int(_number(data.get("at", 0), "at"))
        speed = _speed(data.get("speed", 1.0))
        await asyncio.to_thread(card.locate, at)
        info = self.channels[source_id].video.stream(card.definition).info
        holder: dict[str, PlaybackStream] = {}

        def ended(position: float) -> None:
            for session in self.sessions:
                if session.playback is holder.get("stream"):
                    session._control("end", time=position)

        def failed(error: IVError) -> None:
            for session in list(self.sessions):
                if session.playback is holder.get("stream"):
                    self._spawn(session.close(error.code, error.message))

        stream = PlaybackStream(
            card, info, at, speed, name=f"playback-{at}", on_end=ended, on_error=failed
        )
        holder["stream"] = stream
        return stream

    async def _answer(self, session: MediaSession, sdp: str, definition: str) -> dict[str, Any]:
        pc = session.pc
        pc.on("datachannel", session.on_channel)

        @pc.on("connectionstatechange")
        async def changed() -> None:
            if pc.connectionState in ("failed", "closed") and not session.closed.is_set():
                log.info(
                    "session %s with %s ended: %s", session.id, session.peer, pc.connectionState
                )
                await session.close()

        try:
            await pc.setRemoteDescription(RTCSessionDescription(remote_sdp(sdp), "offer"))
        except ValueError as exc:
            raise _bad(f"bad offer: {exc}") from None
        _check_media(session.kind, pc)
        channel = session.channel
        answer_info: dict[str, Any] = {}
        for transceiver in pc.getTransceivers():
            failed = tap_receiver(transceiver.receiver, session.on_remote_frame)
            if transceiver.kind == "video":
                session.decode_failed = failed
            if session.kind in wire.NON_VIEWING:
                transceiver.direction = "inactive"
            elif transceiver.kind == "video" and session.playback is not None:
                session.video.switch(session.playback)
                _prefer(transceiver, "video/H264")
                transceiver.sender.replaceTrack(session.video.track("video"))
                transceiver.direction = "sendrecv"
                played = session.playback.info
                answer_info["video"] = {
                    "codec": played.codec,
                    "width": played.width,
                    "height": played.height,
                    "definition": self.cards[session.source_id].definition,
                }
            elif transceiver.kind == "audio" and session.playback is not None:
                if channel.audio is not None:
                    session.audio.switch(session.playback.audio_out)
                    _prefer(transceiver, "opus")
                    transceiver.sender.replaceTrack(session.audio.track("audio"))
                    transceiver.direction = "sendrecv"
                    answer_info["audio"] = {"codec": "opus", "rate": 48_000}
                else:
                    transceiver.direction = "inactive"
            elif transceiver.kind == "video":
                session.start_video(definition)
                track = session.video.track("video")
                _prefer(transceiver, "video/H264")
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendrecv"  # aiortc answers with what the offer allows
                info = session.video.stream.info if session.video.stream else None
                if info is not None:
                    answer_info["video"] = {
                        "codec": info.codec,
                        "width": info.width,
                        "height": info.height,
                        "definition": definition,
                    }
            elif transceiver.kind == "audio" and channel.audio is not None:
                session.audio.switch(channel.audio)
                _prefer(transceiver, channel.audio.info.codec)
                transceiver.sender.replaceTrack(session.audio.track("audio"))
                transceiver.direction = "sendrecv"  # aiortc answers with what the offer allows
                answer_info["audio"] = {
                    "codec": channel.audio.info.codec,
                    "rate": channel.audio.info.clock_rate,
                }
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        self._spawn(self._connect_or_close(session))
        log.info(
            "session %s: %s of source %s for %s",
            session.id,
            session.kind,
            session.source_id,
            session.peer,
        )
        return {
            "sdp": pc.localDescription.sdp,
            "type": "answer",
            "session": session.id,
            **answer_info,
        }


def _check_media(kind: str, pc: RTCPeerConnection) -> None:
    """Refuse an offer that would hold a place and carry nothing: a player must offer to
    receive video, a transmission a data channel."""
    kinds = {t.kind for t in pc.getTransceivers()}
    if kind in wire.NON_VIEWING:
        if pc.sctp is None:
            raise _bad("a transmission offer needs a data channel (m=application)")
    elif "video" not in kinds:
        raise _bad(f"a {kind} offer must receive video (an m=video section)")


def _prefer(transceiver: Any, codec: str) -> None:
    """Answer with exactly this codec: what the source produces is passed through."""
    mime = "video/H264" if codec.lower() in ("h264", "video/h264") else CODECS[codec][0]
    if not answer_with(transceiver, mime):
        raise IVError.of(
            ErrorCode.IVPlayerError_AVInformationAbnormal,
            f"the app cannot receive {mime}, which this source sends",
        )
