"""One source, many viewers: encoded packets handed to each viewer through a bounded queue.

The source publishes each encoded access unit once; every viewer gets the same object.
A viewer whose queue is full loses what it had queued and skips to the next keyframe, so
a slow viewer never delays the source or the other viewers. A new viewer starts at a
keyframe: from the cached GOP when the source passes pre-encoded video through (it cannot
make a keyframe on demand), or by asking the encoder for an IDR (``on_keyframe_wanted``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FanOut", "MediaPacket", "Viewer"]


@dataclass(frozen=True)
class MediaPacket:
    """One encoded access unit (or audio frame) and its timing."""

    data: bytes
    pts: int
    keyframe: bool
    #: Anything the source wants to carry along (e.g. the av.Packet, its time base).
    extra: Any = None


@dataclass(eq=False)
class Viewer:
    """One viewer's end: iterate it (or ``await get()``) for packets; ``None`` at the end."""

    fanout: FanOut
    queue: asyncio.Queue[MediaPacket | None]
    waiting_for_keyframe: bool = True
    #: Packets this viewer lost because it fell behind.
    dropped: int = 0
    closed: bool = field(default=False)

    async def get(self) -> MediaPacket | None:
        if self.closed and self.queue.empty():
            return None
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[MediaPacket]:
        while (packet := await self.get()) is not None:
            yield packet

    def close(self) -> None:
        """Stop receiving (the source goes on for the others)."""
        self.fanout.remove(self)


class FanOut:
    """Hands a source's packets to its viewers."""

    def __init__(
        self,
        *,
        queue_size: int = 120,
        cache_gop: bool = False,
        on_keyframe_wanted: Callable[[], object] | None = None,
        max_gop: int = 600,
    ) -> None:
        self.queue_size = queue_size
        self.cache_gop = cache_gop
        self.on_keyframe_wanted = on_keyframe_wanted
        self.max_gop = max_gop
        self.viewers: list[Viewer] = []
        self._gop: list[MediaPacket] = []
        self._ended = False

    def add(self) -> Viewer:
        """A new viewer, starting at a keyframe."""
        viewer = Viewer(self, asyncio.Queue(self.queue_size))
        if self._ended:
            viewer.closed = True
            viewer.queue.put_nowait(None)
            return viewer
        self.viewers.append(viewer)
        if self._gop and len(self._gop) < self.queue_size:
            for packet in self._gop:
                viewer.queue.put_nowait(packet)
            viewer.waiting_for_keyframe = False
        elif self.on_keyframe_wanted is not None:
            self.on_keyframe_wanted()
        return viewer

    def reopen(self) -> None:
        """After :meth:`end`: take viewers again (the source was started anew)."""
        if self._ended:
            self._ended = False
            self._gop = []

    def remove(self, viewer: Viewer) -> None:
        if viewer in self.viewers:
            self.viewers.remove(viewer)
        if not viewer.closed:
            viewer.closed = True
            _clear(viewer.queue)
            viewer.queue.put_nowait(None)

    def keyframe_wanted(self) -> None:
        """A viewer's decoder lost its place (e.g. a PLI): get a keyframe soon."""
        if self.on_keyframe_wanted is not None:
            self.on_keyframe_wanted()

    def publish(self, packet: MediaPacket) -> None:
        """Give ``packet`` to every viewer; never blocks."""
        if self.cache_gop:
            if packet.keyframe:
                self._gop = [packet]
            elif self._gop and len(self._gop) < self.max_gop:
                self._gop.append(packet)
        for viewer in self.viewers:
            if viewer.waiting_for_keyframe:
                if not packet.keyframe:
                    continue
                viewer.waiting_for_keyframe = False
            if viewer.queue.full():
                viewer.dropped += _clear(viewer.queue)
                if not packet.keyframe:
                    viewer.dropped += 1
                    viewer.waiting_for_keyframe = True
                    continue
            viewer.queue.put_nowait(packet)

    def flush(self) -> None:
        """Drop what every viewer has queued; each starts again at the next keyframe (a
        played-back stream after a seek)."""
        for viewer in self.viewers:
            viewer.dropped += _clear(viewer.queue)
            viewer.waiting_for_keyframe = True

    def end(self) -> None:
        """The source ended: every viewer gets ``None`` after what it has queued."""
        self._ended = True
        for viewer in list(self.viewers):
            viewer.closed = True
            if viewer.queue.full():
                viewer.dropped += _clear(viewer.queue)
            viewer.queue.put_nowait(None)
        self.viewers.clear()


def _clear(queue: asyncio.Queue[MediaPacket | None]) -> int:
    dropped = 0
    while not queue.empty():
        queue.get_nowait()
        dropped += 1
    return dropped
