"""Device media sources: one reader or encoder per stream, fanned out to every viewer.

A source is named by a URI:

- ``testsrc:`` the moving test pattern with a burned-in clock, H.264 encoded once per
  definition (``testsrc:?definition=mid&fps=15&bitrate=600000``, or ``size=WxH``);
- ``file:PATH`` an MP4 or MPEG-TS file, looped, H.264 passed through untouched;
- ``rtsp://...`` an IP camera, H.264 passed through untouched;
- ``v4l2:/dev/video0`` a capture device: H.264 passed through when the device gives it,
  raw frames encoded once otherwise;

and audio:

- ``tone:440`` a sine wave (``tone:440?codec=pcmu``);
- ``file:PATH.wav`` (any audio PyAV reads, looped), ``alsa:hw:0`` or ``pulse:default``;
- ``none`` no audio.

Every stream runs on its own thread (reading, pacing, encoding are blocking work) and
hands its packets to the event loop, where :class:`~iotvideo.media.fanout.FanOut` gives
them to the viewers. A stream starts with its first viewer and stops after its last.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np

from iotvideo.media.audio import CODECS, PACKET_MS, AudioEncoder, Tone, read_wav
from iotvideo.media.fanout import FanOut, MediaPacket, Viewer
from iotvideo.media.h264 import CLOCK_RATE, H264Encoder, is_idr, with_parameter_sets
from iotvideo.media.testsrc import Stamp, TestPattern
from iotvideo.media.webrtc import PacketTrack, make_packet

__all__ = [
    "DEFINITIONS",
    "AudioStream",
    "EncodedVideoStream",
    "Feed",
    "MediaStream",
    "SourceError",
    "VideoSource",
    "open_audio",
    "open_video",
]

log = logging.getLogger("iotvideo.media")

VIDEO_TIME_BASE = Fraction(1, CLOCK_RATE)

#: The seed's definitions (low is the default), as sizes of the test pattern.
DEFINITIONS: dict[str, tuple[int, int]] = {
    "low": (320, 180),
    "mid": (640, 360),
    "high": (1280, 720),
}


class SourceError(ValueError):
    """A source URI that cannot be opened; the message says why."""


@dataclass(frozen=True)
class StreamInfo:
    kind: str  # "video" or "audio"
    codec: str  # "h264", "opus", "pcmu", "pcma"
    clock_rate: int
    width: int = 0
    height: int = 0


class MediaStream(ABC):
    """One encoded stream with its viewers; runs a worker thread while it has any."""

    info: StreamInfo

    def __init__(self, *, cache_gop: bool, name: str) -> None:
        self.name = name
        self.fanout = FanOut(cache_gop=cache_gop, on_keyframe_wanted=self.keyframe_wanted)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # stop, or a keyframe wanted now
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Packets made so far (encoded or read), for tests and numbers.
        self.packets = 0
        self.error: str | None = None

    @property
    def time_base(self) -> Fraction:
        return Fraction(1, self.info.clock_rate)

    def add_viewer(self) -> Viewer:
        """A viewer starting at a keyframe; starts the stream if it was idle."""
        self._ensure_running()
        return self.fanout.add()

    def remove_viewer(self, viewer: Viewer) -> None:
        self.fanout.remove(viewer)
        if not self.fanout.viewers:
            self.stop()

    def keyframe_wanted(self) -> None:  # noqa: B027 - most streams cannot make one
        """A viewer needs a keyframe soon (overridden by streams that encode)."""

    def stop(self) -> None:
        """Stop producing; returns at once (the thread ends within a frame interval, and
        never publishes after this)."""
        self._stop.set()
        self._wake.set()
        self._thread = None

    def _ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive() and not self._stop.is_set():
            return
        self._loop = asyncio.get_running_loop()
        # A thread still winding down keeps its own (set) stop event.
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.fanout.reopen()
        self._thread = threading.Thread(
            target=self._work, args=(self._stop,), name=self.name, daemon=True
        )
        self._thread.start()

    def _work(self, stop: threading.Event) -> None:
        try:
            self.run(stop)
        except Exception as exc:  # a camera that went away, a broken file
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("media source %s failed: %s", self.name, self.error)
        finally:
            if not stop.is_set():
                self._post_end()

    def _publish(self, data: bytes, pts: int, keyframe: bool) -> None:
        """From the worker thread: hand a packet to the viewers."""
        self.packets += 1
        loop = self._loop
        if loop is not None and not loop.is_closed():
            packet = MediaPacket(data, pts, keyframe, self.time_base)
            loop.call_soon_threadsafe(self.fanout.publish, packet)

    def _post_end(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.fanout.end)

    @abstractmethod
    def run(self, stop: threading.Event) -> None:
        """The worker: produce packets with :meth:`_publish` until ``stop`` is set."""


def _sleep_until(deadline: float, stop: threading.Event) -> bool:
    """Wait until the monotonic ``deadline``; False if stopped first."""
    delay = deadline - time.monotonic()
    return not stop.wait(delay) if delay > 0 else not stop.is_set()


# Video


class EncodedVideoStream(MediaStream):
    """Pictures encoded once for all viewers: the test pattern, a raw camera, an app's
    camera. ``pictures(width, height)`` yields RGB frames (it may block); the stream
    takes one per frame interval, on its own clock."""

    def __init__(
        self,
        pictures: Callable[[int, int], Iterator[np.ndarray]],
        width: int,
        height: int,
        *,
        fps: float,
        bitrate: int,
        epoch: float | None = None,
        name: str,
        encoder: Callable[[], Any] | None = None,
        on_picture: Callable[[np.ndarray], object] | None = None,
    ) -> None:
        super().__init__(cache_gop=False, name=name)
        self.info = StreamInfo("video", "h264", CLOCK_RATE, width, height)
        self.fps, self.bitrate = fps, bitrate
        self.epoch = time.monotonic() if epoch is None else epoch
        self._pictures = pictures
        self._encoder = encoder
        self.on_picture = on_picture
        self._force = threading.Event()
        # One worker encodes at a time: a stream restarted at once (its last viewer left
        # and a new one came) starts a new thread while the old one finishes its frame,
        # and an encoder module (the app's camera) is one codec context for both: two
        # threads in it crashed libx264 (a segfault in the suite).
        self._exclusive = threading.Lock()

    def keyframe_wanted(self) -> None:
        self._force.set()
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        with self._exclusive:
            if not stop.is_set():
                self._encode(stop)

    def _encode(self, stop: threading.Event) -> None:
        width, height = self.info.width, self.info.height
        pictures = self._pictures(width, height)
        encoder = (
            self._encoder()
            if self._encoder is not None
            else H264Encoder(width, height, fps=self.fps, bitrate=self.bitrate)
        )
        interval = 1.0 / self.fps
        wake = self._wake
        # The frame grid is shared with the source's other definitions (one epoch), so a
        # viewer switching definition sees its timestamps carry on. The first frame, and a
        # keyframe a new viewer waits for, are made at once, off the grid.
        tick = int((time.monotonic() - self.epoch) / interval) + 1
        now_frame = True
        while not stop.is_set():
            if not now_frame:
                delay = self.epoch + tick * interval - time.monotonic()
                if delay > 0 and wake.wait(delay):
                    wake.clear()
                    now_frame = self._force.is_set()
                    continue
            at = time.monotonic() - self.epoch if now_frame else tick * interval
            pts = round(at * CLOCK_RATE)
            image = next(pictures)
            if self.on_picture is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self.on_picture, image)
            if self._force.is_set():
                self._force.clear()
                encoder.force_keyframe()
            for packet in encoder.encode(image, pts):
                data = bytes(packet)
                self._publish(data, int(packet.pts or pts), is_idr(data))
            if now_frame:
                now_frame = False
            else:
                tick += 1
            # Never fall behind: skip the ticks that passed while encoding; and keep an
            # off-grid frame at least half an interval from the next one.
            tick = max(tick, int((time.monotonic() - self.epoch) / interval + 0.5) + 1)


def test_pattern(width: int, height: int) -> Iterator[np.ndarray]:
    """The ``testsrc:`` pictures: each stamped with the time it is taken and its number."""
    pattern = TestPattern(width, height)
    count = 0
    while True:
        yield pattern.frame(Stamp(int(time.time() * 1000), count))
        count += 1


class DemuxVideoStream(MediaStream):
    """H.264 read from a container (file, RTSP, V4L2) and passed through untouched.

    MP4 stores H.264 with length prefixes and the parameter sets in its header; RTP and
    MPEG-TS want Annex-B with the parameter sets in the stream, so MP4 input goes through
    the ``h264_mp4toannexb`` bitstream filter (a rewrite of headers, no decoding).
    Viewers joining between keyframes start from the cached GOP: the camera's encoder
    cannot be asked for a keyframe.
    """

    def __init__(
        self,
        url: str,
        *,
        loop: bool,
        pace: bool,
        options: dict[str, str] | None = None,
        input_format: str | None = None,
        name: str,
        info: StreamInfo,
    ) -> None:
        super().__init__(cache_gop=True, name=name)
        self.url, self.loop, self.pace = url, loop, pace
        self.options = options or {}
        self.input_format = input_format
        self.info = info

    def run(self, stop: threading.Event) -> None:
        offset = 0  # pts added on each loop of a file
        started = time.monotonic()
        while not stop.is_set():
            last = self._play_once(stop, offset, started)
            if not self.loop or last is None:
                return
            offset = last

    def _play_once(self, stop: threading.Event, offset: int, started: float) -> int | None:
        """One pass over the input; the pts to continue from, None if nothing was read."""
        container: Any = av.open(
            self.url, format=self.input_format, options=self.options, timeout=10
        )
        try:
            stream = container.streams.video[0]
            bsf = _annexb_filter(stream)
            extradata = _annexb_extradata(stream)
            last: int | None = None
            first: int | None = None
            step = round(CLOCK_RATE / float(stream.average_rate or 25))
            for packet in container.demux(stream):
                if stop.is_set():
                    return None
                if packet.size == 0 or (packet.pts is None and packet.dts is None):
                    continue
                for out in bsf(packet) if bsf is not None else [packet]:
                    raw = out.pts if out.pts is not None else out.dts
                    pts = int(raw * stream.time_base * CLOCK_RATE)
                    first = pts if first is None else first
                    pts = pts - first + offset
                    if self.pace and not _sleep_until(started + pts / CLOCK_RATE, stop):
                        return None
                    data = bytes(out)
                    keyframe = bool(out.is_keyframe) or is_idr(data)
                    if keyframe:
                        data = with_parameter_sets(data, extradata)
                    self._publish(data, pts, keyframe)
                    last = pts + step
            return last
        finally:
            container.close()


def _annexb_filter(stream: Any) -> Callable[[Any], list[Any]] | None:
    """The mp4-to-Annex-B filter when the stream stores H.264 as in MP4 (avcC)."""
    extradata = bytes(stream.codec_context.extradata or b"")
    if not extradata or extradata[0] != 1:
        return None
    ctx = av.BitStreamFilterContext("h264_mp4toannexb", stream)
    return lambda packet: list(ctx.filter(packet))


def _annexb_extradata(stream: Any) -> bytes:
    extradata = bytes(stream.codec_context.extradata or b"")
    return extradata if extradata.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")) else b""


def _probe_video(url: str, input_format: str | None, options: dict[str, str]) -> StreamInfo:
    try:
        container: Any = av.open(url, format=input_format, options=options, timeout=10)
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"cannot open {url}: {exc}") from None
    try:
        if not container.streams.video:
            raise SourceError(f"{url} has no video")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        if codec != "h264":
            raise SourceError(f"{url} has {codec} video; only H.264 passes through")
        return StreamInfo("video", "h264", CLOCK_RATE, stream.width, stream.height)
    finally:
        container.close()


class VideoSource:
    """A video source with one stream per definition (or one for all, when passed
    through: a camera's stream has the size it has)."""

    def __init__(self, uri: str, streams: dict[str, MediaStream]) -> None:
        self.uri = uri
        self.streams = streams

    def stream(self, definition: str) -> MediaStream:
        if definition not in DEFINITIONS:
            raise SourceError(f"definition must be one of {', '.join(DEFINITIONS)}")
        return self.streams.get(definition) or next(iter(self.streams.values()))

    def stop(self) -> None:
        for stream in self.streams.values():
            stream.stop()


def _query(uri: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(uri)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return parts.path, query


def open_video(uri: str) -> VideoSource:
    """A video source from its URI (see the module doc); SourceError when unusable."""
    scheme = uri.split(":", 1)[0].lower()
    if scheme == "testsrc":
        _, query = _query(uri)
        try:
            fps = float(query.get("fps", 15))
            bitrate = int(query.get("bitrate", 600_000))
            sizes = dict(DEFINITIONS)
            if "size" in query:
                w, h = (int(v) for v in query["size"].lower().split("x"))
                TestPattern(w, h)  # validates
                sizes = dict.fromkeys(DEFINITIONS, (w, h))
        except ValueError as exc:
            raise SourceError(f"bad testsrc option in {uri!r}: {exc}") from None
        if not 1 <= fps <= 60:
            raise SourceError("testsrc fps must be 1..60")
        epoch = time.monotonic()
        streams: dict[str, MediaStream] = {}
        made: dict[tuple[int, int], MediaStream] = {}
        for definition, (w, h) in sizes.items():
            if (w, h) not in made:
                scaled = bitrate * (w * h) // (640 * 360)
                made[(w, h)] = EncodedVideoStream(
                    test_pattern,
                    w,
                    h,
                    fps=fps,
                    bitrate=max(100_000, scaled),
                    epoch=epoch,
                    name=f"testsrc-{w}x{h}",
                )
            streams[definition] = made[(w, h)]
        return VideoSource(uri, streams)
    if scheme == "file":
        path = Path(uri[len("file:") :].removeprefix("//"))
        if not path.is_file():
            raise SourceError(f"no such file: {path}")
        info = _probe_video(str(path), None, {})
        stream = DemuxVideoStream(
            str(path), loop=True, pace=True, name=f"file-{path.name}", info=info
        )
        return VideoSource(uri, {"mid": stream})
    if scheme in ("rtsp", "rtsps"):
        options = {"rtsp_transport": "tcp", "fflags": "nobuffer"}
        info = _probe_video(uri, None, options)
        stream = DemuxVideoStream(
            uri, loop=False, pace=False, options=options, name="rtsp", info=info
        )
        return VideoSource(uri, {"mid": stream})
    if scheme == "v4l2":
        device = uri[len("v4l2:") :] or "/dev/video0"
        if not Path(device).exists():
            raise SourceError(f"no capture device {device}")
        options = {"input_format": "h264"}
        info = _probe_video(device, "v4l2", options)
        stream = DemuxVideoStream(
            device,
            loop=False,
            pace=False,
            options=options,
            input_format="v4l2",
            name="v4l2",
            info=info,
        )
        return VideoSource(uri, {"mid": stream})
    raise SourceError(
        f"unknown video source {uri!r}: use testsrc:, file:PATH, rtsp://HOST/PATH or v4l2:DEVICE"
    )


# Audio


class AudioStream(MediaStream):
    """PCM from a tone, a file or a capture device, encoded once as Opus or G.711."""

    def __init__(
        self,
        pcm: Callable[[int, int], Iterator[np.ndarray]],
        codec: str,
        name: str,
        *,
        encoder: Callable[[], Any] | None = None,
    ):
        super().__init__(cache_gop=False, name=name)
        _, rate, _ = CODECS[codec]
        self.codec = codec
        self.info = StreamInfo("audio", codec, rate)
        self.pcm = pcm
        self._encoder = encoder

    def run(self, stop: threading.Event) -> None:
        encoder = self._encoder() if self._encoder is not None else AudioEncoder(self.codec)
        count = encoder.rate * PACKET_MS // 1000
        interval = PACKET_MS / 1000
        start = time.monotonic()
        for i, samples in enumerate(self.pcm(encoder.rate, count)):
            if not _sleep_until(start + i * interval, stop):
                return
            for packet in encoder.encode(samples):
                self._publish(bytes(packet), int(packet.pts or 0), True)


def _looped(samples: np.ndarray) -> Callable[[int, int], Iterator[np.ndarray]]:
    def chunks(rate: int, count: int) -> Iterator[np.ndarray]:
        pcm = samples if rate == 48_000 else samples[:: 48_000 // rate]
        if pcm.size < count:
            pcm = np.pad(pcm, (0, count - pcm.size))
        i = 0
        while True:
            chunk = pcm[i : i + count]
            if chunk.size < count:
                chunk = np.concatenate([chunk, pcm[: count - chunk.size]])
            yield chunk
            i = (i + count) % pcm.size

    return chunks


def _tone(frequency: float) -> Callable[[int, int], Iterator[np.ndarray]]:
    def chunks(rate: int, count: int) -> Iterator[np.ndarray]:
        tone = Tone(frequency, rate=rate)
        while True:
            yield tone.next_samples(count)

    return chunks


def capture(
    fmt: str, device: str, sample_rate: int | None = None
) -> Callable[[int, int], Iterator[np.ndarray]]:
    """PCM from a capture device (``alsa``/``pulse``), recorded at ``sample_rate`` (the
    device's default when None), in chunks of ``count`` samples resampled to ``rate``."""

    def chunks(rate: int, count: int) -> Iterator[np.ndarray]:
        options = {"sample_rate": str(sample_rate)} if sample_rate else {}
        with av.open(device, format=fmt, options=options) as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            fifo = np.zeros(0, dtype=np.int16)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    fifo = np.concatenate([fifo, out.to_ndarray().reshape(-1)])
                while fifo.size >= count:
                    yield fifo[:count]
                    fifo = fifo[count:]

    return chunks


def open_audio(uri: str) -> AudioStream | None:
    """An audio source from its URI (see the module doc); None for ``none``."""
    if uri in ("", "none"):
        return None
    path, query = _query(uri)
    codec = query.get("codec", "opus").lower()
    if codec not in CODECS:
        raise SourceError(f"audio codec must be one of {', '.join(CODECS)}")
    scheme = uri.split(":", 1)[0].lower()
    if scheme == "tone":
        try:
            frequency = float(path.removeprefix("tone:") or 440)
        except ValueError:
            raise SourceError(f"bad tone frequency in {uri!r}") from None
        return AudioStream(_tone(frequency), codec, f"tone-{frequency:g}")
    if scheme == "file":
        file = Path(path.removeprefix("file:").removeprefix("//"))
        if not file.is_file():
            raise SourceError(f"no such file: {file}")
        try:
            samples = read_wav(file)
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot read audio from {file}: {exc}") from None
        if samples.size == 0:
            raise SourceError(f"{file} has no audio")
        return AudioStream(_looped(samples), codec, f"file-{file.name}")
    if scheme in ("alsa", "pulse"):
        device = path.split(":", 1)[1] or "default"
        return AudioStream(capture(scheme, device), codec, f"{scheme}-{device}")
    raise SourceError(
        f"unknown audio source {uri!r}: use tone:HZ, file:PATH, alsa:DEVICE, pulse:DEVICE or none"
    )


class Feed:
    """What one peer's sending track reads: a viewer of a stream, which can be moved to
    another stream (a definition, a camera) without the track or the peer noticing.

    ``track(kind)`` is the :class:`~iotvideo.media.webrtc.PacketTrack` to send; a
    receiver's keyframe request reaches the current stream; ``on_end`` is called when the
    stream ends by itself (not when the feed is moved or closed).
    """

    def __init__(
        self, stream: MediaStream | None = None, *, on_end: Callable[[], object] | None = None
    ) -> None:
        self.stream: MediaStream | None = None
        self.viewer: Viewer | None = None
        self.on_end = on_end
        if stream is not None:
            self.switch(stream)

    def switch(self, stream: MediaStream) -> None:
        """Read from ``stream`` from its next keyframe on."""
        if stream is self.stream:
            return
        old_stream, old_viewer = self.stream, self.viewer
        self.stream, self.viewer = stream, stream.add_viewer()
        if old_stream is not None and old_viewer is not None:
            old_stream.remove_viewer(old_viewer)

    def close(self) -> None:
        stream, viewer = self.stream, self.viewer
        self.stream = self.viewer = None
        if stream is not None and viewer is not None:
            stream.remove_viewer(viewer)

    def keyframe_wanted(self) -> None:
        if self.stream is not None:
            self.stream.keyframe_wanted()

    async def next_packet(self) -> av.Packet[Any] | None:
        while True:
            viewer = self.viewer
            if viewer is None:
                return None
            packet = await viewer.get()
            if packet is None:
                if viewer is not self.viewer:
                    continue  # moved to another stream
                if self.on_end is not None:
                    self.on_end()
                return None
            return make_packet(packet.data, packet.pts, packet.extra)

    def track(self, kind: str) -> PacketTrack:
        return PacketTrack(kind, self.next_packet, on_keyframe_wanted=self.keyframe_wanted)
