"""The HLS face of restream: a camera's access units cut into MPEG-TS segments at
keyframes (PyAV's muxer, as the cloud's recordings are), with a sliding live playlist,
and Low-Latency HLS on top (RFC 8216bis): each segment is made of parts of at most
:data:`PART_TARGET` seconds, listed as they are made (``#EXT-X-PART``), with a preload
hint for the next one and blocking playlist reloads (``_HLS_msn``, ``_HLS_part``). A
player that knows LL-HLS (hls.js, AVPlayer) plays about a part behind live; any other
reads the same playlist as plain HLS and plays the whole segments.

A part is muxed on its own (its own PAT and PMT), and a segment is its parts one after
the other, so a segment and its parts are the same bytes.

The segmenter is a feed subscriber while anyone asks for its playlist or segments, and
leaves ``idle`` seconds after the last request. Video is passed through untouched; a
camera's audio comes as AAC (the feed's one transcoder, :mod:`iotvideo.app.restream.audio`),
on the video's timeline, and goes into the same parts.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from iotvideo.app.player import EncodedPacket
from iotvideo.app.restream.audio import AAC_MIME, AAC_RATE
from iotvideo.media.recorder import mux_packet
from iotvideo.media.worker import SerialWorker

__all__ = ["PART_TARGET", "HlsSegmenter", "Part", "Segment"]

CLOCK = 90_000
#: Segments kept in the playlist (and served).
WINDOW = 6
#: The longest part (seconds).
PART_TARGET = 0.2
#: Complete segments whose parts the playlist still lists.
PARTS_LISTED = 2


@dataclass(frozen=True)
class Part:
    duration: float
    data: bytes
    #: It begins with a keyframe (a segment's first part).
    independent: bool


@dataclass(frozen=True)
class Segment:
    sequence: int
    duration: float
    data: bytes
    discontinuity: bool = False
    parts: tuple[Part, ...] = ()


def _is_video(packet: EncodedPacket) -> bool:
    return packet.mime.lower().startswith("video/")


class HlsSegmenter:
    """Feed packets in with :meth:`add` (on the event loop); parts of at most
    :data:`PART_TARGET` seconds and segments of at least ``target`` seconds (cut at the
    first keyframe after it) come out, muxed on a worker thread. ``has_audio`` says
    whether the camera sends audio (its AAC goes in every part then)."""

    def __init__(
        self,
        name: str,
        *,
        target: float = 1.0,
        has_audio: Callable[[], bool] = lambda: False,
    ) -> None:
        self.target = target
        self.segments: deque[Segment] = deque(maxlen=WINDOW)
        self.last_request = time.monotonic()
        #: Requests waiting for segments now (the segmenter is in use, however long ago
        #: the last request came).
        self.waiting = 0
        #: The camera's pull was refused for good (its playlist is refused too).
        self.refused = False
        self._has_audio = has_audio
        self._sequence = 0  # of the segment being gathered
        #: Parts muxed of segments not complete yet, by sequence number.
        self._made: dict[int, list[Part]] = {}
        #: A new timeline abandons the segment being gathered (its number is used again):
        #: its parts still on the worker are dropped. (sequence, generation).
        self._generation = 0
        self._abandoned: tuple[int, int] | None = None
        self._pending: list[EncodedPacket] = []  # the part being gathered
        self._part_start: int | None = None  # RTP time of its first picture
        self._segment_start: int | None = None
        self._parts_cut = 0  # parts of the open segment handed to the worker
        self._t0: int | None = None  # RTP time of the stream's first keyframe
        self._last_ts: int | None = None
        self._discontinuity = False
        self._changed = asyncio.Event()
        self._worker = SerialWorker(f"hls {name}", maxsize=64)

    # Packets in

    def add(self, packet: EncodedPacket | None) -> None:
        if packet is None:  # the pull was refused for good
            self.refused = True
            self._notify()
            return
        if not _is_video(packet):
            if packet.mime == AAC_MIME and self._part_start is not None:
                self._pending.append(packet)
            return
        if self._last_ts is not None:
            step = (packet.timestamp - self._last_ts) & 0xFFFFFFFF
            if step > 10 * CLOCK:  # a new pull (the device came back): a new timeline
                self._pending = []
                self._t0 = self._part_start = self._segment_start = None
                self._abandoned = (self._sequence, self._generation)
                self._generation += 1
                self._made.pop(self._sequence, None)
                self._parts_cut = 0
                self._discontinuity = True
        self._last_ts = packet.timestamp
        if self._t0 is None:
            if not packet.keyframe:
                return
            self._t0 = self._segment_start = self._part_start = packet.timestamp
        assert self._segment_start is not None and self._part_start is not None
        since_segment = ((packet.timestamp - self._segment_start) & 0xFFFFFFFF) / CLOCK
        since_part = ((packet.timestamp - self._part_start) & 0xFFFFFFFF) / CLOCK
        if packet.keyframe and since_segment >= self.target:
            self._cut_part(packet.timestamp)
            self._cut_segment(since_segment)
            self._segment_start = packet.timestamp
        elif since_part >= PART_TARGET - 1e-6 and any(_is_video(p) for p in self._pending):
            self._cut_part(packet.timestamp)
        if not self._pending:
            self._part_start = packet.timestamp
        self._pending.append(packet)

    def _cut_part(self, end: int) -> None:
        """Hand the gathered part (it ends where ``end``'s picture begins) to the worker."""
        packets, self._pending = self._pending, []
        if not packets or self._part_start is None:
            return
        duration = ((end - self._part_start) & 0xFFFFFFFF) / CLOCK
        independent = self._parts_cut == 0
        self._parts_cut += 1
        t0, audio, sequence = self._t0 or 0, self._has_audio(), self._sequence
        generation = self._generation
        loop = asyncio.get_running_loop()

        def mux() -> None:
            part = Part(duration, _mux_ts(packets, t0, audio=audio), independent)
            loop.call_soon_threadsafe(self._part_done, sequence, generation, part)

        self._worker.submit(mux)

    def _cut_segment(self, duration: float) -> None:
        """Close the segment being made once its parts are muxed (the worker runs in order)."""
        sequence, self._sequence = self._sequence, self._sequence + 1
        discontinuity, self._discontinuity = self._discontinuity, False
        self._parts_cut = 0
        loop = asyncio.get_running_loop()

        def close() -> None:
            loop.call_soon_threadsafe(self._segment_done, sequence, duration, discontinuity)

        self._worker.submit(close)

    def _part_done(self, sequence: int, generation: int, part: Part) -> None:
        if (sequence, generation) != self._abandoned:
            self._made.setdefault(sequence, []).append(part)
            self._notify()

    def _segment_done(self, sequence: int, duration: float, discontinuity: bool) -> None:
        parts = tuple(self._made.pop(sequence, ()))
        for older in [k for k in self._made if k < sequence]:
            del self._made[older]
        if parts:
            data = b"".join(p.data for p in parts)
            self.segments.append(Segment(sequence, duration, data, discontinuity, parts))
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # Requests

    async def wait_segments(self, count: int, timeout: float) -> None:
        """Until at least ``count`` segments are out (TimeoutError after ``timeout``)."""
        await self._wait(lambda: len(self.segments) >= count, timeout)

    async def wait_part(self, sequence: int, part: int | None, timeout: float) -> None:
        """Until segment ``sequence`` is complete (``part`` None) or has part ``part``
        (LL-HLS blocking reload); TimeoutError after ``timeout``."""
        await self._wait(lambda: self.has(sequence, part), timeout)

    def has(self, sequence: int, part: int | None) -> bool:
        newest = self.segments[-1].sequence if self.segments else -1
        if sequence <= newest:
            return True
        return part is not None and len(self._made.get(sequence, ())) > part

    async def _wait(self, ready: Callable[[], bool], timeout: float) -> None:
        self.waiting += 1
        try:
            async with asyncio.timeout(timeout):
                while not ready() and not self.refused:
                    await self._changed.wait()
        finally:
            self.waiting -= 1
            self.last_request = time.monotonic()

    def segment(self, sequence: int) -> Segment | None:
        return next((s for s in self.segments if s.sequence == sequence), None)

    def part(self, sequence: int, index: int) -> Part | None:
        found = self.segment(sequence)
        parts = found.parts if found is not None else tuple(self._made.get(sequence, ()))
        return parts[index] if 0 <= index < len(parts) else None

    def next_part(self) -> tuple[int, int]:
        """The part the playlist hints at (being gathered now): (segment, index)."""
        return self._sequence, len(self._made.get(self._sequence, ()))

    def playlist(self, query: str = "") -> str:
        """The live playlist (RFC 8216bis, with LL-HLS parts); URIs carry ``query``."""
        suffix = f"?{query}" if query else ""
        segments = list(self.segments)
        target = max([self.target, *(s.duration for s in segments)])
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:6",
            f"#EXT-X-TARGETDURATION:{int(target + 0.999)}",
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * PART_TARGET:.3f}",
            f"#EXT-X-PART-INF:PART-TARGET={PART_TARGET:.3f}",
            f"#EXT-X-MEDIA-SEQUENCE:{segments[0].sequence if segments else 0}",
        ]
        for position, s in enumerate(segments):
            if s.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if position >= len(segments) - PARTS_LISTED:
                lines += _part_lines(s.sequence, s.parts, suffix)
            lines += [f"#EXTINF:{s.duration:.3f},", f"seg{s.sequence}.ts{suffix}"]
        newest = segments[-1].sequence if segments else -1
        for sequence in sorted(k for k in self._made if k > newest):  # not complete yet
            lines += _part_lines(sequence, tuple(self._made[sequence]), suffix)
        sequence, index = self.next_part()
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg{sequence}.{index}.ts{suffix}"')
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self._worker.close()


def _part_lines(sequence: int, parts: tuple[Part, ...], suffix: str) -> list[str]:
    return [
        f'#EXT-X-PART:DURATION={p.duration:.3f},URI="seg{sequence}.{i}.ts{suffix}"'
        + (",INDEPENDENT=YES" if p.independent else "")
        for i, p in enumerate(parts)
    ]


def _mux_ts(packets: list[EncodedPacket], t0: int, *, audio: bool) -> bytes:
    buffer = io.BytesIO()
    container: Any = av.open(buffer, "w", format="mpegts")
    stream = container.add_stream("h264", rate=CLOCK)
    stream.time_base = Fraction(1, CLOCK)
    sound: Any = None
    if audio:
        sound = container.add_stream("aac", rate=AAC_RATE)
        sound.codec_context.layout = "mono"
    for packet in sorted(packets, key=lambda p: (p.timestamp - t0) & 0xFFFFFFFF):
        pts = (packet.timestamp - t0) & 0xFFFFFFFF
        if packet.mime == AAC_MIME:
            if sound is not None and pts < 1 << 31:  # (not from before the first picture)
                mux_packet(container, sound, packet.data, pts, Fraction(1, CLOCK), True)
            continue
        mux_packet(container, stream, packet.data, pts, Fraction(1, CLOCK), packet.keyframe)
    container.close()
    return buffer.getvalue()
