"""Playback of the memory card over a media session, and file download.

A playback session (kind ``playback``) reads the card from the keyframe at or before the
asked time and sends what it reads paced at the asked speed, across files without a gap:
its own stream (one per session; nothing is encoded, the stored H.264 and Opus go out as
they are). Every video frame carries its recording time in an SEI message
(:func:`iotvideo.media.h264.with_recording_time`), which is how the app knows its position.

- speed 0.5..32: above 4x only keyframes go out, at most :data:`KEYFRAME_FPS` a second
  (the bandwidth stays that of the live stream); audio up to 2x, time-stretched with its
  pitch kept when the speed is not 1 (the one thing encoded per session), muted above;
- pause stops sending (the app holds the last picture); resume goes on from the next frame;
- seek starts from the keyframe at or before the time, in any file;
- a gap in the recording is skipped at once; the end is told (``end`` control message).

A download session (kind ``download``) sends one complete file over the ``file`` data
channel, from a byte offset; one download per device at a time (21060); after a pause or
the end the device waits :attr:`DeviceMedia.download_idle_timeout` (10 s) for the next
request, then hangs up with 20136.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any, BinaryIO

from iotvideo.device.card import Card, CardPacket
from iotvideo.media.audio import AudioDecoder, AudioEncoder
from iotvideo.media.fanout import FanOut, MediaPacket
from iotvideo.media.h264 import CLOCK_RATE, with_recording_time
from iotvideo.media.sources import MediaStream, StreamInfo
from iotvideo.protocol import media as wire
from iotvideo.protocol.errors import ErrorCode, IVError

if TYPE_CHECKING:
    from iotvideo.device.media import MediaSession

__all__ = ["KEYFRAME_FPS", "Download", "PlaybackStream"]

log = logging.getLogger("iotvideo.device.playback")

#: Keyframes a second, at most, above 4x.
KEYFRAME_FPS = 5.0
#: A jump in recording time longer than this is a gap in the recording: skipped at once.
GAP_MS = 1500
#: Bytes per data-channel message of a download, and how much may wait in its buffer.
CHUNK = 60_000
HIGH_WATER = 1 << 20


class _Stretch:
    """Audio at 0.5..2x with its pitch kept: decoded, time-stretched (FFmpeg's atempo),
    encoded again; one per session, only while its speed is not 1 (about 0.5 ms of CPU
    per 20 ms of audio)."""

    def __init__(self, speed: float) -> None:
        import av

        self.speed = speed
        self._decoder = AudioDecoder("opus")
        self._encoder = AudioEncoder("opus")
        graph = av.filter.Graph()
        source = graph.add_abuffer(
            format="s16", sample_rate=48_000, layout="mono", time_base=Fraction(1, 48_000)
        )
        tempo = graph.add("atempo", f"{speed:g}")
        sink = graph.add("abuffersink")
        source.link_to(tempo)
        tempo.link_to(sink)
        graph.configure()
        self._graph = graph
        self._pts = 0

    def feed(self, data: bytes) -> list[bytes]:
        import av

        samples = self._decoder.decode(data)
        if not samples.size:
            return []
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.time_base, frame.pts = 48_000, Fraction(1, 48_000), self._pts
        self._pts += samples.size
        self._graph.push(frame)
        out: list[bytes] = []
        while True:
            try:
                stretched = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return out
            pcm = stretched.to_ndarray().reshape(-1)
            out += [bytes(p) for p in self._encoder.encode(pcm)]


class AudioOut(MediaStream):
    """The audio half of a playback: its packets come from the video's reader."""

    def __init__(self, name: str) -> None:
        super().__init__(cache_gop=False, name=name)
        self.info = StreamInfo("audio", "opus", 48_000)

    def run(self, stop: threading.Event) -> None:
        stop.wait()


class PlaybackStream(MediaStream):
    """One session's played-back stream: a reader thread over the card, paced."""

    def __init__(
        self,
        card: Card,
        info: StreamInfo,
        at_ms: int,
        speed: float,
        *,
        name: str,
        on_end: Callable[[float], object],
        on_error: Callable[[IVError], object],
    ) -> None:
        super().__init__(cache_gop=False, name=name)
        self.info = info
        self.card = card
        self.audio_out = AudioOut(f"{name}-audio")
        self._on_end, self._on_error = on_end, on_error
        self._lock = threading.Lock()
        self._seek: tuple[int, concurrent.futures.Future[int] | None] | None = (at_ms, None)
        self._paused = False
        self._speed = speed
        self._reanchor = False
        self._pause_acks: list[concurrent.futures.Future[float | None]] = []
        self._catch_up: float | None = None
        self._last_catch_up = 0.0
        #: Recording time (ms) of the last frame sent.
        self.position: float | None = None

    # Commands (from the event loop)

    def seek(self, at_ms: int) -> concurrent.futures.Future[int]:
        """Play from the keyframe at or before ``at_ms``; the future gets that keyframe's
        time (or the IVError)."""
        done: concurrent.futures.Future[int] = concurrent.futures.Future()
        with self._lock:
            previous = self._seek
            self._seek = (at_ms, done)
        if previous is not None and previous[1] is not None:
            previous[1].cancel()
        self._wake.set()
        return done

    def keyframe_wanted(self) -> None:
        """A receiver needs a keyframe (a recorder starting, a PLI): replay from the
        keyframe at or before the picture shown, at once, up to that picture; then go on
        paced. At most once a second; above 4x every frame is a keyframe already."""
        now = time.monotonic()
        with self._lock:
            position = self.position
            if (
                position is None
                or self._speed > 4
                or self._seek is not None
                or now - self._last_catch_up < 1.0
            ):
                return
            self._last_catch_up = now
            self._seek = (int(position), None)
            self._catch_up = position
        self._wake.set()

    def pause(self) -> concurrent.futures.Future[float | None]:
        """Stop sending; the future gets the recording time of the last frame sent, once
        the reader has stopped (nothing is sent after it)."""
        done: concurrent.futures.Future[float | None] = concurrent.futures.Future()
        with self._lock:
            self._paused = True
            self._pause_acks.append(done)
        self._wake.set()
        return done

    def resume(self) -> None:
        with self._lock:
            self._paused, self._reanchor = False, True
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        with self._lock:
            self._speed, self._reanchor = speed, True
        self._wake.set()

    def stop(self) -> None:
        super().stop()
        self.audio_out.stop()

    # The reader thread

    def _post(self, fn: Callable[..., object], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _send(self, fanout: FanOut, data: bytes, pts: int, keyframe: bool, rate: int) -> None:
        self.packets += 1
        self._post(fanout.publish, MediaPacket(data, pts, keyframe, Fraction(1, rate)))

    def run(self, stop: threading.Event) -> None:
        started = time.monotonic()
        packets: Iterator[CardPacket] | None = None
        held: CardPacket | None = None
        anchor: tuple[float, float] | None = None
        seeking: concurrent.futures.Future[int] | None = None
        need_key = True
        last_read: float | None = None
        last_key_wall = 0.0
        last_pts = {"video": -1, "audio": -1}
        ended = False
        preview = False  # after a seek while paused: show the keyframe landed on, then hold
        skipped: CardPacket | None = None  # the last keyframe skipped by the rate cap
        stretch: _Stretch | None = None
        catch_up: float | None = None  # replay at once up to this time (a keyframe request)
        last_one = False
        while not stop.is_set():
            with self._lock:
                seek, self._seek = self._seek, None
                if seek is not None:
                    catch_up, self._catch_up = self._catch_up, None
                paused, speed = self._paused, self._speed
                reanchor, self._reanchor = self._reanchor, False
                acks, self._pause_acks = self._pause_acks, []
            for ack in acks:
                ack.set_result(self.position)
            if reanchor:
                anchor = None
            if seek is not None:
                at_ms, seeking = seek
                if packets is not None:
                    with contextlib.suppress(Exception):
                        packets.close()  # type: ignore[attr-defined]
                packets = self.card.read(at_ms)
                held, anchor, need_key, last_read, ended = None, None, True, None, False
                skipped, last_one = None, False
                self.position = None
                preview = paused
                self._post(self._flush)
            if not paused:
                preview = False
            if packets is None or (paused and not preview) or ended:
                self._wake.wait()
                self._wake.clear()
                continue
            if held is None:
                try:
                    held = next(packets)
                except StopIteration:
                    if skipped is not None:  # show where the recording ends
                        held, skipped, last_one = skipped, None, True
                        continue
                    ended = True
                    if seeking is not None:
                        seeking.set_exception(
                            IVError.of(
                                ErrorCode.IVTermErr_msg_find_record_file_fail,
                                "no recording at or after that time",
                            )
                        )
                        seeking = None
                    self._post(self._on_end, self.position or 0.0)
                    continue
                except IVError as exc:
                    ended = True
                    if seeking is not None:
                        seeking.set_exception(exc)
                        seeking = None
                    self._post(self._on_error, exc)
                    continue
                gap = last_read is not None and abs(held.time_ms - last_read) > GAP_MS
                last_read = held.time_ms
                if gap:
                    anchor = None
            packet = held
            if catch_up is not None and packet.time_ms > catch_up:
                catch_up, anchor = None, None  # caught up: paced from here
            if packet.kind == "audio" and (speed > 2 or need_key or paused or catch_up):
                held = None
                continue
            if packet.kind == "video" and not packet.keyframe and (need_key or speed > 4):
                need_key, held = True, None
                continue
            if anchor is None:
                base = self.position if self.position is not None else packet.time_ms
                anchor = (time.monotonic(), min(base, packet.time_ms))
            due = anchor[0] + (packet.time_ms - anchor[1]) / speed / 1000
            soonest = last_key_wall + 1 / KEYFRAME_FPS
            if packet.kind == "video" and speed > 4 and due < soonest:
                if not last_one:
                    held, skipped = None, packet  # too many keyframes a second: skip it
                    continue
                due = soonest
            if catch_up is not None:
                due = time.monotonic()  # replaying up to the picture shown: at once
            delay = due - time.monotonic()
            if delay > 0.001 and self._wake.wait(delay):
                self._wake.clear()
                continue  # a command: look again (the packet is kept)
            held = None
            if packet.kind == "video":
                need_key = preview = last_one = False
                skipped = None
                if seeking is not None:
                    seeking.set_result(int(packet.time_ms))
                    seeking = None
                pts = max(last_pts["video"] + 1, round((due - started) * CLOCK_RATE))
                last_pts["video"] = pts
                if speed > 4:
                    last_key_wall = due
                data = with_recording_time(packet.data, int(packet.time_ms))
                self._send(self.fanout, data, pts, packet.keyframe, CLOCK_RATE)
                self.position = packet.time_ms
            else:
                if speed == 1.0:
                    pieces = [packet.data]
                else:
                    if stretch is None or stretch.speed != speed:
                        stretch = _Stretch(speed)
                    pieces = stretch.feed(packet.data)
                for n, piece in enumerate(pieces):
                    pts = round((due - started) * 48_000) if n == 0 else 0
                    pts = max(last_pts["audio"] + (960 if n else 1), pts)
                    last_pts["audio"] = pts
                    self._send(self.audio_out.fanout, piece, pts, True, 48_000)
        if packets is not None:
            with contextlib.suppress(Exception):
                packets.close()  # type: ignore[attr-defined]

    def _flush(self) -> None:
        self.fanout.flush()
        self.audio_out.fanout.flush()


class Download:
    """A session's file download (see the module doc)."""

    def __init__(self, session: MediaSession, card: Card) -> None:
        self.session, self.card = session, card
        self.channel: Any = None
        self._task: asyncio.Task[None] | None = None
        self._pause = asyncio.Event()
        self._idle: asyncio.TimerHandle | None = None
        self._drained = asyncio.Event()
        self.sent = 0
        self.start_idle()  # a download connection that asks nothing is hung up too

    @property
    def media(self) -> Any:
        return self.session.media

    def on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.bufferedAmountLowThreshold = HIGH_WATER // 2
        channel.on("bufferedamountlow", self._drained.set)

    async def start(self, file_time: int, offset: int) -> dict[str, Any]:
        """Begin sending ``file_time``'s file from ``offset``; the ready reply."""
        busy = self.media.download_owner
        if (busy is not None and busy is not self) or self._task is not None:
            raise IVError.of(
                ErrorCode.IVDownloadError_DownloaderBusy,
                "this device is sending another file; pause that download first",
            )
        if self.channel is None or self.channel.readyState != "open":
            raise IVError.of(ErrorCode.IVDownloadError_DevUnknownError, "no file channel")
        if offset < 0:
            raise IVError.of(ErrorCode.IVDownloadError_IncorrectOffset, "offset must be >= 0")
        self.media.download_owner = self
        try:
            f, size = await asyncio.to_thread(self._open, file_time)
        except BaseException:
            self.media.download_owner = None
            raise
        if offset > size:
            f.close()
            self.media.download_owner = None
            raise IVError.of(
                ErrorCode.IVDownloadError_IncorrectOffset,
                f"offset {offset} is beyond the file's {size} bytes",
            )
        self._cancel_idle()
        self._pause.clear()
        self._task = asyncio.create_task(self._send(f, offset, size), name="download")
        log.info(
            "download of %s from %d (%d bytes) to %s", file_time, offset, size, self.session.peer
        )
        return {"file_time": file_time, "offset": offset, "size": size}

    def _open(self, file_time: int) -> tuple[BinaryIO, int]:
        file = self.card.file(file_time)
        if file is None:
            raise IVError.of(
                ErrorCode.IVDownloadError_FileNotFound, f"no recording file {file_time}"
            )
        if not file.complete:
            raise IVError.of(
                ErrorCode.IVDownloadError_FileUnavailable,
                "that file is still being recorded; try again when it is finished",
            )
        try:
            f = self.card.path(file).open("rb")
        except FileNotFoundError:
            raise IVError.of(ErrorCode.IVDownloadError_FileNotFound, "the file is gone") from None
        except OSError as exc:
            raise IVError.of(ErrorCode.IVDownloadError_FileOpenFailed, str(exc)) from None
        return f, os.fstat(f.fileno()).st_size

    def pause(self) -> None:
        self._pause.set()

    async def _send(self, f: BinaryIO, offset: int, size: int) -> None:
        channel = self.channel
        position = offset
        rate: float | None = self.media.download_rate
        started = time.monotonic()
        outcome: dict[str, Any]
        try:
            await asyncio.to_thread(f.seek, offset)
            while position < size and not self._pause.is_set():
                if channel.readyState != "open":
                    return
                if channel.bufferedAmount > HIGH_WATER:
                    self._drained.clear()
                    await self._drained.wait()
                    continue
                if rate is not None:  # a cap, so live viewers keep their bandwidth
                    ahead = started + (position - offset) / rate - time.monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                step = CHUNK if rate is not None else CHUNK * 8
                data = await asyncio.to_thread(f.read, min(step, size - position))
                if not data:
                    raise OSError("the file ended early")
                for i in range(0, len(data), CHUNK):
                    channel.send(data[i : i + CHUNK])
                position += len(data)
                self.sent += len(data)
            if self._pause.is_set() and position < size:
                outcome = {"op": "paused", "offset": position}
            else:
                outcome = {"op": "done", "bytes": position - offset, "size": size}
        except OSError as exc:
            outcome = {
                "op": "error",
                "code": int(ErrorCode.IVDownloadError_FileUnavailable),
                "msg": f"cannot read the file: {exc}",
            }
        finally:
            f.close()
            self._task = None
            if self.media.download_owner is self:
                self.media.download_owner = None
        if channel.readyState == "open":
            channel.send(wire.control(**outcome))  # text, after every chunk (ordered)
        self.start_idle()

    def start_idle(self) -> None:
        self._cancel_idle()
        timeout = self.media.download_idle_timeout
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(timeout, self._idle_expired)

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_expired(self) -> None:
        self._idle = None
        if self._task is None and not self.session.closed.is_set():
            log.info("download session %s idle; hanging up", self.session.id)
            self.media._spawn(
                self.session.close(
                    ErrorCode.IVTermErr_msg_wait_option_timeout_hangup,
                    "no download request for "
                    f"{self.media.download_idle_timeout:g} s after the last one",
                )
            )

    def close(self) -> None:
        self._cancel_idle()
        if self._task is not None and self.channel is not None:
            if self.channel.readyState == "open":  # the device's program stops mid-file
                stopped = {"code": int(ErrorCode.IVDownloadError_ProcessExited)}
                self.channel.send(wire.control("error", msg="the device stopped", **stopped))
            self._task.cancel()
        self._pause.set()
        if self.media.download_owner is self:
            self.media.download_owner = None
