"""The HLS face of restream: a camera's access units cut into MPEG-TS segments at
keyframes (PyAV's muxer, as the cloud's recordings are), with a sliding live playlist.

The segmenter is a feed subscriber while anyone asks for its playlist or segments, and
leaves ``idle`` seconds after the last request. Video is passed through untouched; a
camera's audio comes as AAC (the feed's one transcoder, :mod:`iotvideo.app.restream.audio`),
on the video's timeline, and goes into the same segments.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from iotvideo.app.player import EncodedPacket
from iotvideo.app.restream.audio import AAC_MIME, AAC_RATE
from iotvideo.media.recorder import mux_packet
from iotvideo.media.worker import SerialWorker

__all__ = ["HlsSegmenter", "Segment"]

CLOCK = 90_000
#: Segments kept in the playlist (and served).
WINDOW = 6


@dataclass(frozen=True)
class Segment:
    sequence: int
    duration: float
    data: bytes
    discontinuity: bool = False


class HlsSegmenter:
    """Feed packets in with :meth:`add` (on the event loop); segments of at least
    ``target`` seconds (cut at the first keyframe after it) come out, muxed on a worker
    thread."""

    def __init__(self, name: str, *, target: float = 1.0) -> None:
        self.target = target
        self.segments: deque[Segment] = deque(maxlen=WINDOW)
        self.last_request = time.monotonic()
        #: Requests waiting for segments now (the segmenter is in use, however long ago
        #: the last request came).
        self.waiting = 0
        #: The camera's pull was refused for good (its playlist is refused too).
        self.refused = False
        self._sequence = 0
        self._pending: list[EncodedPacket] = []
        self._t0: int | None = None  # RTP time of the stream's first keyframe
        self._last_ts: int | None = None
        self._discontinuity = False
        self._changed = asyncio.Event()
        self._worker = SerialWorker(f"hls {name}", maxsize=16)

    def add(self, packet: EncodedPacket | None) -> None:
        if packet is None:  # the pull was refused for good
            self.refused = True
            self._changed.set()
            return
        if not packet.mime.lower().startswith("video/"):
            if packet.mime == AAC_MIME and self._t0 is not None:
                self._pending.append(packet)
            return
        if self._last_ts is not None:
            step = (packet.timestamp - self._last_ts) & 0xFFFFFFFF
            if step > 10 * CLOCK:  # a new pull (the device came back): a new timeline
                self._pending = []
                self._t0 = None
                self._discontinuity = True
        self._last_ts = packet.timestamp
        if self._t0 is None:
            if not packet.keyframe:
                return
            self._t0 = packet.timestamp
        if packet.keyframe and self._pending:
            first = next(p for p in self._pending if p.mime.lower().startswith("video/"))
            length = ((packet.timestamp - first.timestamp) & 0xFFFFFFFF) / CLOCK
            if length >= self.target:
                self._finish(self._pending, length)
                self._pending = []
        self._pending.append(packet)

    def _finish(self, packets: list[EncodedPacket], length: float) -> None:
        t0 = self._t0 or 0
        sequence, self._sequence = self._sequence, self._sequence + 1
        discontinuity, self._discontinuity = self._discontinuity, False
        loop = asyncio.get_running_loop()

        def mux() -> None:
            data = _mux_ts(packets, t0)
            loop.call_soon_threadsafe(self._done, Segment(sequence, length, data, discontinuity))

        self._worker.submit(mux)

    def _done(self, segment: Segment) -> None:
        self.segments.append(segment)
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_segments(self, count: int, timeout: float) -> None:
        """Until at least ``count`` segments are out (TimeoutError after ``timeout``)."""
        self.waiting += 1
        try:
            async with asyncio.timeout(timeout):
                while len(self.segments) < count and not self.refused:
                    await self._changed.wait()
        finally:
            self.waiting -= 1
            self.last_request = time.monotonic()

    def segment(self, sequence: int) -> Segment | None:
        return next((s for s in self.segments if s.sequence == sequence), None)

    def playlist(self, query: str = "") -> str:
        """The live playlist (RFC 8216); segment URIs carry ``query`` (a token)."""
        suffix = f"?{query}" if query else ""
        segments = list(self.segments)
        target = max([self.target, *(s.duration for s in segments)])
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{int(target + 0.999)}",
            f"#EXT-X-MEDIA-SEQUENCE:{segments[0].sequence if segments else 0}",
        ]
        for s in segments:
            if s.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            lines += [f"#EXTINF:{s.duration:.3f},", f"seg{s.sequence}.ts{suffix}"]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self._worker.close()


def _mux_ts(packets: list[EncodedPacket], t0: int) -> bytes:
    buffer = io.BytesIO()
    container: Any = av.open(buffer, "w", format="mpegts")
    stream = container.add_stream("h264", rate=CLOCK)
    stream.time_base = Fraction(1, CLOCK)
    audio: Any = None
    if any(p.mime == AAC_MIME for p in packets):
        audio = container.add_stream("aac", rate=AAC_RATE)
        audio.codec_context.layout = "mono"
    for packet in packets:
        pts = (packet.timestamp - t0) & 0xFFFFFFFF
        if packet.mime == AAC_MIME:
            if pts < 1 << 31:  # (not from before the stream's first picture)
                mux_packet(container, audio, packet.data, pts, Fraction(1, CLOCK), True)
            continue
        mux_packet(container, stream, packet.data, pts, Fraction(1, CLOCK), packet.keyframe)
    container.close()
    return buffer.getvalue()
