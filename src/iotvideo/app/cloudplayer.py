"""``CloudPlayer``: plays a range of cloud recording (HLS) with the players' modules, and
downloads it to an MP4.

::

    player = CloudPlayer(device_id, start, end, sdk=sdk)
    player.video_render = my_renderer            # or: async for frame in player.frames()
    await player.play()                          # returns when the range has played
    await player.snapshot("then.jpg")
    await CloudPlayer(device_id, start, end, sdk=sdk).download("clip.mp4")

Reading, demuxing and decoding run on a worker thread (PyAV); frames reach the renderer
on the event loop, paced at ``speed`` times real time (0: as fast as they decode).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av

from iotvideo.app.calls import Completion, operation
from iotvideo.app.modules import VideoRender, VideoRenderable
from iotvideo.protocol.errors import ErrorCode, IVError

if TYPE_CHECKING:
    from iotvideo.app.sdk import IoTVideo

__all__ = ["CloudPlayer"]


def _err(code: ErrorCode, message: str) -> IVError:
    return IVError.of(code, message)


class CloudPlayer:
    def __init__(
        self,
        device_id: str,
        start_time: int,
        end_time: int = 0,
        *,
        sdk: IoTVideo | None = None,
        source_id: int = 0,
        speed: float = 1.0,
        token: str | None = None,
    ) -> None:
        from iotvideo.app.sdk import IoTVideo

        self.sdk = sdk or IoTVideo.default()
        self.device_id, self.source_id = device_id, source_id
        self.start_time, self.end_time = start_time, end_time
        self.speed = speed
        self.token = token
        self.video_render: VideoRenderable = VideoRender()
        self.last_frame: av.VideoFrame | None = None
        self.frames_decoded = 0
        #: Seconds of the range played so far.
        self.position = 0.0
        self._stop = threading.Event()
        self._queues: list[asyncio.Queue[av.VideoFrame | None]] = []

    @operation()
    async def urls(self, *, completion: Completion | None = None) -> list[str]:
        """The play addresses covering the range (one per day at most)."""
        urls, start = [], self.start_time
        while True:
            address = await self.sdk.vas.get_video_play_address(
                self.device_id, start, self.end_time, self.source_id, token=self.token
            )
            urls.append(str(address["url"]))
            if address["endflag"] or int(address["endTime"]) <= start:
                return urls
            start = int(address["endTime"])

    @operation()
    async def play(self, *, completion: Completion | None = None) -> None:
        """Play the range through the renderer; returns at its end (or :meth:`stop`)."""
        if not self.sdk.access_token and self.token is None:
            raise _err(ErrorCode.IVConnError_NotAvailableNow, "register() first")
        self._stop.clear()
        loop = asyncio.get_running_loop()
        for url in await self.urls():
            if self._stop.is_set():
                break
            await asyncio.to_thread(self._decode, url, loop)
        for queue in self._queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    def stop(self) -> None:
        self._stop.set()

    def _decode(self, url: str, loop: asyncio.AbstractEventLoop) -> None:
        try:
            container: Any = av.open(url, timeout=10)
        except av.FFmpegError:
            return  # nothing recorded in this part of the range
        try:
            began = time.monotonic()
            first: float | None = None
            for frame in container.decode(video=0):
                if self._stop.is_set():
                    return
                t = float(frame.time or 0.0)
                first = t if first is None else first
                if self.speed > 0:
                    delay = (t - first) / self.speed - (time.monotonic() - began)
                    if delay > 0 and self._stop.wait(delay):
                        return
                loop.call_soon_threadsafe(self._render, frame, t - first)
        finally:
            container.close()

    def _render(self, frame: av.VideoFrame, at: float) -> None:
        self.last_frame = frame
        self.frames_decoded += 1
        self.position = at
        self.video_render.render(frame)
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(frame)

    async def frames(self, *, maxsize: int = 30) -> AsyncIterator[av.VideoFrame]:
        """Decoded frames as they play, until the end."""
        queue: asyncio.Queue[av.VideoFrame | None] = asyncio.Queue(maxsize)
        self._queues.append(queue)
        try:
            while (frame := await queue.get()) is not None:
                yield frame
        finally:
            self._queues.remove(queue)

    @operation()
    async def snapshot(
        self,
        path: str | Path | None = None,
        *,
        fmt: str = "jpeg",
        completion: Completion | None = None,
    ) -> bytes:
        """The current picture as JPEG or PNG (21040 before the first)."""
        from iotvideo.app.player import picture_of

        return await picture_of(self.last_frame, path, fmt)

    @operation()
    async def download(
        self,
        path: str | Path,
        *,
        progress: Callable[[float, float], object] | None = None,
        completion: Completion | None = None,
    ) -> Path:
        """The range as an MP4 (the recording's H.264 as it is, no re-encoding);
        ``progress(seconds_done, seconds_total)`` as it goes."""
        urls = await self.urls()
        loop = asyncio.get_running_loop()
        total = float(max(1, (self.end_time or int(time.time())) - self.start_time))

        def report(done: float) -> None:
            if progress is not None:
                loop.call_soon_threadsafe(progress, done, total)

        await asyncio.to_thread(_remux, urls, Path(path), report)
        return Path(path)


def _remux(urls: list[str], path: Path, report: Callable[[float], None]) -> None:
    out: Any = av.open(str(path), "w", format="mp4")
    try:
        streams: dict[str, Any] = {}
        offset = 0.0  # seconds: each address continues where the last ended
        for url in urls:
            try:
                source: Any = av.open(url, timeout=10)
            except av.FFmpegError:
                continue  # nothing recorded in this part of the range
            try:
                inputs = [s for s in source.streams if s.type in ("video", "audio")][:2]
                for s in inputs:
                    if s.type not in streams:
                        streams[s.type] = out.add_stream_from_template(s)
                first: float | None = None
                last = 0.0
                for packet in source.demux(*inputs):
                    if packet.dts is None or packet.stream.type not in streams:
                        continue
                    tb = packet.time_base
                    t = float(packet.dts * tb)
                    first = t if first is None else first
                    shift = round((offset - first) / tb)
                    packet.dts += shift
                    if packet.pts is not None:
                        packet.pts += shift
                    last = max(last, float(packet.dts * tb))
                    packet.stream = streams[packet.stream.type]
                    with contextlib.suppress(av.FFmpegError):  # out-of-order at a seam
                        out.mux(packet)
                    if packet.stream.type == "video":
                        report(last)
                offset = last + 0.1
            finally:
                source.close()
        if "video" not in streams:
            raise _err(ErrorCode.IVPlayerError_PlaybackListEmpty, "nothing recorded in the range")
    finally:
        out.close()
