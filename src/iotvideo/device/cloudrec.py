"""Continuous recording to the cloud while the channel's cloud-storage service is in use.

::

    recorder = CloudRecorder(device, media, buffer_dir=Path("/var/lib/cam/vas"))
    await recorder.start()

The recorder watches one source's stream (the encoder or camera the viewers share: no
extra encoding), cuts it into MPEG-TS segments of about ``segment_seconds`` at keyframes,
and keeps every finished segment in ``buffer_dir`` until the cloud has it. Uploads go
oldest first and are retried with backoff, so an outage of minutes loses nothing; the
cloud ignores a segment it already has, so nothing is duplicated. Consecutive segments
share their boundary time (the keyframe that starts the next), so recorded ranges have
no holes and no overlaps. It asks the cloud whether the service is in use at start, on
every ``vas.changed`` push, and every ``poll_interval`` seconds.

Events (:meth:`CloudRecorder.event`) go the same way, with a picture of the live stream.

Under an event plan (``pkg_type`` 2 from the cloud) segments are cut every
:data:`EVENT_SEGMENT_SECONDS` and kept back in ``buffer_dir/held``: only those of the
clips around events are uploaded (:mod:`iotvideo.device.clips`: a pre-roll of 5 s
before each event, a post-roll of 5 s after it), and the others are dropped once older
than the pre-roll.

Audio, when the source has it, is decoded and re-encoded once per recording as AAC
(what HLS players expect) and muxed with the video, placed by its arrival time.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import io
import json
import logging
import secrets
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx

from iotvideo.device.client import DeviceClient
from iotvideo.device.clips import PRE_ROLL_MS, EventClips
from iotvideo.device.media import DeviceMedia
from iotvideo.media.audio import AudioDecoder
from iotvideo.media.fanout import MediaPacket, Viewer
from iotvideo.media.h264 import CLOCK_RATE
from iotvideo.media.recorder import mux_packet, stream_snapshot
from iotvideo.media.sources import AudioStream, MediaStream
from iotvideo.media.worker import SerialWorker, cancel_and_wait
from iotvideo.protocol import link
from iotvideo.protocol.errors import IVError
from iotvideo.protocol.link import Backoff
from iotvideo.protocol.vas import upload_message
from iotvideo.transport import http_url

__all__ = ["CloudRecorder"]

log = logging.getLogger("iotvideo.device.cloudrec")

#: Segment length under an event plan: a clip's edges are at most this far from its own.
EVENT_SEGMENT_SECONDS = 2.0


@dataclass
class _Segmenter:
    """Packets in, finished segments (start_ms, end_ms, bytes) out; runs on a worker."""

    width: int
    height: int
    seconds: float
    #: The live audio's codec (opus, pcmu, pcma), transcoded once to AAC; None: no audio.
    audio: str | None = None
    finished: list[tuple[int, int, bytes]] = field(default_factory=list)
    _t0_ms: int = 0
    _pts0: int | None = None
    _start_ms: int = 0
    _last_ms: int = 0
    _step_ms: int = 66
    _buffer: io.BytesIO | None = None
    _container: Any = None
    _stream: Any = None
    _audio_stream: Any = None
    _decoder: Any = None
    _encoder: Any = None
    _resampler: Any = None
    _audio_pts: int | None = None  # next AAC sample, 48 kHz from the recording's start

    def add(self, packet: MediaPacket, wall_ms: int) -> None:
        if self._pts0 is None:
            if not packet.keyframe:
                return
            self._pts0, self._t0_ms = packet.pts, wall_ms
        at_ms = self._t0_ms + (packet.pts - self._pts0) * 1000 // CLOCK_RATE
        if at_ms > self._last_ms > 0:
            self._step_ms = at_ms - self._last_ms
        if self._container is None:
            self._open(at_ms)
        elif packet.keyframe and at_ms - self._start_ms >= self.seconds * 1000:
            self._close(at_ms)
            self._open(at_ms)
        mux_packet(
            self._container,
            self._stream,
            packet.data,
            packet.pts - self._pts0,
            Fraction(1, CLOCK_RATE),
            packet.keyframe,
        )
        self._last_ms = at_ms

    def add_audio(self, data: bytes, wall_ms: int) -> None:
        """A live audio frame: decoded and re-encoded as AAC (one encoder per recording),
        placed on the recording's clock by its arrival."""
        if self.audio is None or self._container is None or self._pts0 is None:
            return  # audio starts with the first video keyframe
        if self._encoder is None:
            self._decoder = AudioDecoder(self.audio)
            encoder: Any = av.CodecContext.create("aac", "w")
            encoder.sample_rate, encoder.layout, encoder.format = 48_000, "mono", "fltp"
            encoder.time_base = Fraction(1, 48_000)
            encoder.bit_rate = 64_000
            self._encoder = encoder
            self._resampler = av.AudioResampler(format="fltp", layout="mono", rate=48_000)
        samples = self._decoder.decode(data)
        if not samples.size:
            return
        if self._audio_pts is None:
            self._audio_pts = max(0, (wall_ms - self._t0_ms) * 48)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48_000
        frame.pts, frame.time_base = self._audio_pts, Fraction(1, 48_000)
        self._audio_pts += samples.size
        for out in self._resampler.resample(frame):
            for packet in self._encoder.encode(out):
                packet.stream = self._audio_stream
                with contextlib.suppress(av.FFmpegError):
                    self._container.mux(packet)

    def flush(self) -> None:
        """End the recording: the current segment ends one frame after its last."""
        if self._container is not None:
            self._close(self._last_ms + self._step_ms)
        self._pts0 = None
        self._last_ms = 0
        self._encoder = self._decoder = self._resampler = self._audio_pts = None

    def _open(self, at_ms: int) -> None:
        self._buffer = io.BytesIO()
        self._container = av.open(self._buffer, "w", format="mpegts")
        self._stream = self._container.add_stream("h264", rate=CLOCK_RATE)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.time_base = Fraction(1, CLOCK_RATE)
        if self.audio is not None:
            self._audio_stream = self._container.add_stream("aac", rate=48_000)
            self._audio_stream.layout = "mono"
            self._audio_stream.time_base = Fraction(1, 48_000)
        self._start_ms = at_ms

    def _close(self, end_ms: int) -> None:
        self._container.close()
        assert self._buffer is not None
        data = self._buffer.getvalue()
        self._container = self._buffer = None
        if data and end_ms > self._start_ms:
            self.finished.append((self._start_ms, end_ms, data))


class CloudRecorder:
    """Records ``media``'s source ``source_id`` to the cloud while its service is in use."""

    def __init__(
        self,
        device: DeviceClient,
        media: DeviceMedia,
        *,
        buffer_dir: Path,
        source_id: str | None = None,
        chn: int = 0,
        definition: str = "low",
        segment_seconds: float = 10.0,
        poll_interval: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.device, self.media = device, media
        self.buffer_dir = Path(buffer_dir)
        self.source_id = source_id or next(iter(media.channels))
        self.chn = chn
        self.definition = definition
        self.segment_seconds = segment_seconds
        self.poll_interval = poll_interval
        self.backoff = backoff or Backoff(base=0.5, cap=10.0)
        #: Whether the cloud said the service is in use (so the device records), and what
        #: its plan keeps: 1 everything, 2 the clips around events.
        self.recording = False
        self.pkg_type = 1
        self.clips = EventClips()
        self._recorded_type = 1
        self.uploaded = 0
        #: Which of the device's cloud URLs uploads go to; the next one after a failure.
        self._url_index = 0
        self.upload_failures = 0
        self._changed = asyncio.Event()
        self._queued = asyncio.Event()
        self._idle = asyncio.Event()  # the uploader went through the buffer
        self._progress = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._record: asyncio.Task[None] | None = None
        device.add_push("vas.changed", self._on_changed)

    # Lifecycle

    async def start(self) -> None:
        self.buffer_dir.mkdir(parents=True, exist_ok=True)
        self._tasks = [
            asyncio.create_task(self._watch(), name="vas-watch"),
            asyncio.create_task(self._upload_loop(), name="vas-upload"),
        ]
        if await asyncio.to_thread(self.pending):
            self._queued.set()

    async def stop(self, *, drain: bool = False) -> None:
        """Stop recording (the current segment is finished and kept) and uploading; with
        ``drain``, after every kept segment reached the cloud. What is left is uploaded
        after the next start."""
        await self._stop_recording()
        if drain:
            await self.drained()
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)

    def pending(self) -> list[Path]:
        """Segments and events waiting for upload, oldest first."""
        kept = [*self.buffer_dir.glob("*.ts"), *self.buffer_dir.glob("*.evt")]
        return sorted(kept, key=lambda p: (int(p.stem.split("_")[1]), p.stem.endswith("-upd")))

    # Events

    async def event(
        self,
        alarm_type: int,
        *,
        first_alarm_type: int | None = None,
        start: int | None = None,
        end: int | None = None,
        picture: bytes | None = None,
        live_picture: bool = True,
        event_id: str | None = None,
        ongoing: bool = False,
    ) -> str:
        """Raise a cloud event (``alarm_type`` bits: bit0 motion, bit1 sound..., bit15
        "has video", bits 16+ the vendor's own) from ``start`` to ``end`` (UNIX seconds,
        default now). Its picture: ``picture`` (JPEG), else the live stream's (with
        ``live_picture``). Kept and uploaded like segments; returns its alarmId. The
        same ``event_id`` again (no picture needed) moves the event's end later and adds
        its bits: an event raised when it starts, then ended. ``ongoing``: the end is not
        known yet (under an event plan its clip stays open until the repeat)."""
        if not 0 < alarm_type < 1 << 32:
            raise ValueError("alarm_type is a non-zero 32-bit mask")
        now = int(self.device.now())
        start = now if start is None else start
        end = max(start, now if end is None else end)
        if picture is None and live_picture:
            stream = self.media.channels[self.source_id].video.stream(self.definition)
            try:
                picture = await stream_snapshot(stream)
            except (ValueError, TimeoutError) as exc:
                log.warning("event without a picture: %s", exc)
        event_id = event_id or secrets.token_hex(10)
        self.clips.event(event_id, start * 1000, None if ongoing else end * 1000)
        if self.pkg_type == 2:
            await asyncio.to_thread(self._release)
            self._queued.set()
        first = first_alarm_type or (alarm_type & -alarm_type)
        header = json.dumps(
            {
                "alarmType": alarm_type,
                "firstAlarmType": first,
                "start": start,
                "end": end,
                "id": event_id,
            }
        )
        later = "-upd" if picture is None and not live_picture else ""  # after the first
        path = self.buffer_dir / f"{self.chn}_{start * 1000}_{event_id}{later}.evt"
        data = header.encode() + b"\n" + (picture or b"")
        await asyncio.to_thread(_atomic_write, path, data)
        self._queued.set()
        return event_id

    async def drained(self) -> None:
        """Wait until every finished segment is in the cloud (while uploading runs)."""
        while await asyncio.to_thread(self.pending):
            self._idle.clear()
            self._queued.set()
            await self._idle.wait()

    def _on_changed(self, data: dict[str, Any]) -> None:
        if int(data.get("chn", 0)) == self.chn:
            self._changed.set()

    # Whether to record

    async def _watch(self) -> None:
        while True:
            try:
                status = await self.device.link.request("vas.status", {"chn": self.chn})
                wanted = bool(status.get("recording"))
                self.pkg_type = 2 if status.get("pkg_type") == 2 else 1
                if self.recording and (not wanted or self.pkg_type != self._recorded_type):
                    await self._stop_recording()  # again below, cut for the new plan
                if wanted and not self.recording:
                    self._start_recording()
            except IVError as exc:  # offline: keep doing what we did, ask once back
                log.debug("vas status unknown: %s", exc)
                if not self.device.link.online:
                    with contextlib.suppress(IVError):
                        await self.device.wait_online(self.poll_interval)
                    if self.device.link.online:
                        continue
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._changed.wait()

    def _start_recording(self) -> None:
        self.recording = True
        self._recorded_type = self.pkg_type
        channel = self.media.channels[self.source_id]
        stream = channel.video.stream(self.definition)
        viewer = stream.add_viewer()
        self._record = asyncio.create_task(
            self._record_loop(stream, viewer, channel.audio), name="vas-record"
        )
        log.info("device %s: cloud recording of source %s started", self.device.tid, self.source_id)

    async def _stop_recording(self) -> None:
        self.recording = False
        task, self._record = self._record, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _record_loop(
        self, stream: MediaStream, viewer: Viewer, audio: AudioStream | None
    ) -> None:
        info = stream.info
        seconds = self.segment_seconds
        if self._recorded_type == 2:  # short: a clip's edges fall close to its events
            seconds = min(seconds, EVENT_SEGMENT_SECONDS)
        segmenter = _Segmenter(info.width, info.height, seconds, audio.codec if audio else None)
        worker = SerialWorker(f"vas-{self.device.tid}", maxsize=1000)
        loop = asyncio.get_running_loop()

        def take(packet: MediaPacket, wall_ms: int) -> None:
            segmenter.add(packet, wall_ms)
            self._save(segmenter, loop)

        listening = (
            asyncio.create_task(self._audio_loop(audio, segmenter, worker))
            if audio is not None
            else None
        )
        try:
            async for packet in viewer:
                worker.submit(take, packet, int(self.device.now() * 1000))
        finally:
            stream.remove_viewer(viewer)
            if listening is not None:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listening

            def finish() -> None:
                segmenter.flush()
                self._save(segmenter, loop)

            worker.submit(finish)
            await asyncio.to_thread(worker.close, wait=True)

    async def _audio_loop(
        self, audio: AudioStream, segmenter: _Segmenter, worker: SerialWorker
    ) -> None:
        viewer = audio.add_viewer()
        try:
            async for packet in viewer:
                worker.submit(segmenter.add_audio, packet.data, int(self.device.now() * 1000))
        finally:
            audio.remove_viewer(viewer)

    def _save(self, segmenter: _Segmenter, loop: asyncio.AbstractEventLoop) -> None:
        """On the worker: write finished segments to the buffer, then wake the uploader.
        Under an event plan a segment outside every clip is held back instead."""
        while segmenter.finished:
            start, end, data = segmenter.finished.pop(0)
            name = f"{self.chn}_{start}_{end}.ts"
            if self._recorded_type == 2 and not self.clips.wanted(start, end):
                held = self.buffer_dir / "held"
                held.mkdir(exist_ok=True)
                _atomic_write(held / name, data)
                self._prune(held, start)
                continue
            _atomic_write(self.buffer_dir / name, data)
            loop.call_soon_threadsafe(self._queued.set)

    def _prune(self, held: Path, newest_start: int) -> None:
        """Drop held segments older than the pre-roll; forget clips that ended."""
        for path in held.glob("*.ts"):
            if int(path.stem.split("_")[2]) <= newest_start - PRE_ROLL_MS:
                path.unlink(missing_ok=True)
        self.clips.forget_before(newest_start - PRE_ROLL_MS)

    def _release(self) -> None:
        """Upload the held segments a clip now wants (an event's pre-roll). Blocking."""
        held = self.buffer_dir / "held"
        for path in sorted(held.glob("*.ts")) if held.is_dir() else []:
            _chn, start, end = (int(v) for v in path.stem.split("_"))
            if self.clips.wanted(start, end):
                path.replace(self.buffer_dir / path.name)

    # Uploads

    async def _upload_loop(self) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            while True:
                await self._queued.wait()
                self._queued.clear()
                for path in await asyncio.to_thread(self.pending):
                    while not await self._upload(http, path):
                        self.upload_failures += 1
                        await asyncio.sleep(self.backoff.next())
                    self.backoff.reset()
                self._idle.set()

    async def _upload(self, http: httpx.AsyncClient, path: Path) -> bool:
        body = await asyncio.to_thread(path.read_bytes)
        if path.suffix == ".evt":
            header, _, body = body.partition(b"\n")
            fields = json.loads(header)
            target = (
                f"/vas/device/event?chn={self.chn}&alarmType={fields['alarmType']}"
                f"&firstAlarmType={fields['firstAlarmType']}&start={fields['start']}"
                f"&end={fields['end']}&id={fields['id']}"
            )
        else:
            chn, start, end = (int(v) for v in path.stem.split("_"))
            target = f"/vas/device/segment?chn={chn}&start={start}&end={end}"
        now = int(self.device.now())
        message = upload_message(self.device.tid, "POST", target, body, now)
        headers = {
            "x-iv-tid": self.device.tid,
            "x-iv-time": str(now),
            "x-iv-signature": link.sign(self.device.certificate.private_key, message),
            "content-type": "video/mp2t",
        }
        urls = self.device.cloud_urls
        base = http_url(urls[self._url_index % len(urls)])
        try:
            response = await http.post(base + target, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.info("upload to %s failed: %s; trying the next cloud URL", base, exc)
            self._url_index += 1  # fail over, as the link does
            return False
        if response.status_code >= 500:
            self._url_index += 1
            return False
        if response.status_code == 401 and self._clock_was_off(response):
            return False  # signed again with the cloud's time
        if response.status_code >= 400:
            # Refused for good (no service any more, a bad segment): drop it.
            log.warning("segment %s refused: %s", path.name, response.text)
        else:
            self.uploaded += 1
        await asyncio.to_thread(path.unlink, missing_ok=True)
        async with self._progress:
            self._progress.notify_all()
        return True

    def _clock_was_off(self, response: httpx.Response) -> bool:
        """Whether a refused upload's signature time was off (the clock moved since the
        last login): the device's clock is set by the answer's ``Date`` and the upload
        tried again, instead of losing the segment."""
        try:
            cloud = email.utils.parsedate_to_datetime(response.headers["date"]).timestamp()
        except (KeyError, TypeError, ValueError):
            return False
        before = self.device.link.clock_offset
        # Date is whole seconds (cut down), read at most the request's time ago.
        self.device.link.set_cloud_time(cloud, within=response.elapsed.total_seconds() + 1)
        return abs(self.device.link.clock_offset - before) > link.CLOCK_TOLERANCE

    async def wait_uploaded(self, count: int) -> None:
        """Wait until ``count`` segments in all have reached the cloud."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.uploaded >= count)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
