"""Runs the devices of a gateway config, each isolated from the others.

:class:`Gateway` holds one :class:`DeviceRunner` per device of the file; a device runner
holds a device client, its media, its firmware updater and one :class:`ChannelRunner` per
channel. A channel runner:

- opens its camera off the event loop, and keeps trying with backoff (1 s, doubling,
  up to 30 s, with jitter) while it cannot: the device runs meanwhile, with its other channels;
- pulls the camera for as long as it runs (a viewer of its own), measures its frame and
  bit rate, and reports the channel in the thing model (``ProReadonly.chnN``): online
  when packets flow, offline when the camera goes away, and pulls it again (backoff);
- records it onto its card and, while a plan is in use, to the cloud;
- decodes the detection stream on a worker thread, looks at ``motion.fps`` pictures a
  second scaled to ``motion.width``, and turns what the detector sees into events: the
  link's ``Event.motion`` and a cloud event with a picture of the moment (its end is
  sent once the scene has been still for the cool-down).

SIGHUP (:meth:`Gateway.reload`) reads the file again: devices and channels added,
removed or changed start or stop; the rest keep streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from iotvideo.device.card import Card
from iotvideo.device.client import DeviceClient, VersionInfo
from iotvideo.device.cloudrec import CloudRecorder
from iotvideo.device.gateway.config import ChannelConfig, DeviceConfig, GatewayConfig, load_config
from iotvideo.device.gateway.model import channel_path
from iotvideo.device.gateway.motion import (
    Detector,
    EventEnd,
    EventStart,
    EventTracker,
    MotionDetector,
)
from iotvideo.device.media import Channel, DeviceMedia
from iotvideo.device.ota import FirmwareUpdater
from iotvideo.media.h264 import H264Decoder
from iotvideo.media.recorder import encode_picture
from iotvideo.media.sources import MediaStream, SourceError, VideoSource, open_audio, open_video
from iotvideo.media.worker import SerialWorker, cancel_and_wait
from iotvideo.protocol.errors import IVError
from iotvideo.protocol.link import Backoff

__all__ = ["ChannelRunner", "DeviceRunner", "Gateway", "redact"]

log = logging.getLogger("iotvideo.gateway")

#: Seconds between reports of a channel's measured rates.
REPORT_INTERVAL = 30.0
#: The longest wait between two tries of a camera that does not answer.
RETRY_CAP = 30.0
_CREDENTIALS = re.compile(r"(?<=://)([^/@:]*)(:[^/@]*)?@")


def redact(uri: str) -> str:
    """``uri`` with the password of its credentials hidden (logs, problems)."""
    return _CREDENTIALS.sub(lambda m: f"{m[1]}{':***' if m[2] else ''}@", uri)


@dataclass
class _Rates:
    """A channel's packets and bytes since ``since`` (monotonic)."""

    since: float
    packets: int = 0
    bytes: int = 0

    def take(self, now: float) -> tuple[float, int]:
        """(frames a second, kilobits a second) since the last take; starts anew."""
        seconds = max(1e-3, now - self.since)
        rates = (round(self.packets / seconds, 1), int(self.bytes * 8 / 1000 / seconds))
        self.since, self.packets, self.bytes = now, 0, 0
        return rates


class ChannelRunner:
    """One channel of a device (see the module's text)."""

    def __init__(
        self,
        device: DeviceRunner,
        config: ChannelConfig,
        *,
        detector: Callable[[ChannelConfig], Detector] | None = None,
    ) -> None:
        self.device, self.config = device, config
        self.source_id = str(config.number)
        self.name = f"{device.config.name} channel {config.number}"
        self.online = False
        self.events = 0
        self._make_detector = detector or (lambda c: MotionDetector(c.motion))
        self._tasks: list[asyncio.Task[None]] = []
        self._card: Card | None = None
        self._recorder: CloudRecorder | None = None
        self._detect: VideoSource | None = None
        self._size = (0, 0)
        self._rates = _Rates(time.monotonic())
        self._reported: dict[str, Any] = {}

    @property
    def chn(self) -> int:
        """The channel's cloud-storage channel (ChnNum): 0 on a one-channel camera, as on
        any camera; the channel's number on an NVR."""
        return 0 if len(self.device.config.channels) == 1 else self.config.number

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name=self.name))

    async def stop(self) -> None:
        """Stop pulling, recording and detecting; the channel is reported offline."""
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        if self.device.client.link.online:
            await self._report(online=False)
        if self._recorder is not None:
            await self._recorder.stop()
            self._recorder = None
        await self.device.media.remove_channel(self.source_id)
        if self._detect is not None:
            self._detect.stop()
            self._detect = None
        if self._card is not None:
            self._card.close()
            self._card = None

    # Opening

    async def _run(self) -> None:
        channel = await self._open(self.config.video, with_audio=True)
        media = self.device.media
        media.add_channel(self.source_id, channel)
        card = self.config.card
        if card is not None:
            try:
                self._card = await Card.open(
                    card.dir,
                    file_seconds=card.file_seconds,
                    max_bytes=card.max_bytes,
                    max_days=card.max_days,
                )
                media.add_card(self.source_id, self._card)
            except OSError as exc:
                log.error("%s: cannot use %s as its card: %s", self.name, card.dir, exc)
        folder = self.device.folder / f"vas-{self.config.number}"
        self._recorder = CloudRecorder(
            self.device.client, media, buffer_dir=folder, source_id=self.source_id, chn=self.chn
        )
        await self._recorder.start()
        # A camera's stream is passed through: every definition is the same stream. (A
        # test pattern encodes each: the smallest is pulled.)
        stream = channel.video.stream("low")
        detect: MediaStream | None = None
        if self.config.motion.enabled:
            if self.config.detect:
                self._detect = (await self._open(self.config.detect, with_audio=False)).video
                detect = self._detect.stream("low")
            else:
                detect = stream
        pulls = [self._pull(stream, measure=True, detect=detect is stream)]
        if detect is not None and detect is not stream:
            pulls.append(self._pull(detect, measure=False, detect=True))
        await asyncio.gather(*pulls)

    async def _open(self, uri: str, *, with_audio: bool) -> Channel:
        """The source, opened off the event loop; tried again with backoff until it opens."""
        backoff = Backoff(base=1.0, cap=RETRY_CAP, floor=1.0)
        while True:
            try:
                video = await asyncio.to_thread(open_video, uri)
                sound = None
                if with_audio:
                    sound = await asyncio.to_thread(open_audio, self.config.audio)
                return Channel(video, sound)
            except SourceError as exc:
                if backoff.attempt == 0:
                    log.error("%s: %s; retrying with backoff", self.name, redact(str(exc)))
                await self._report(online=False)
                await asyncio.sleep(backoff.next())

    # Pulling

    async def _pull(self, stream: MediaStream, *, measure: bool, detect: bool) -> None:
        """Read ``stream`` for as long as the channel runs; again after the camera goes."""
        backoff = Backoff(base=1.0, cap=RETRY_CAP, floor=1.0)
        while True:
            viewer = stream.add_viewer()
            watcher = _Watcher(self, detect) if detect else None
            try:
                async for packet in viewer:
                    if measure:
                        if not self.online:
                            self._size = (stream.info.width, stream.info.height)
                            self._rates = _Rates(time.monotonic())
                            await self._report(online=True)
                            backoff.reset()
                        self._rates.packets += 1
                        self._rates.bytes += len(packet.data)
                        if time.monotonic() - self._rates.since >= REPORT_INTERVAL:
                            await self._report(online=True)
                    if watcher is not None:
                        watcher.feed(packet.data, packet.pts, self.device.client.now())
            finally:
                stream.remove_viewer(viewer)
                if watcher is not None:
                    watcher.close()
            if measure:
                log.warning(
                    "%s: the camera went away (%s); pulling it again",
                    self.name,
                    redact(stream.error or "its stream ended"),
                )
                await self._report(online=False)
            await asyncio.sleep(backoff.next())

    async def _report(self, *, online: bool) -> None:
        self.online = online
        fps, kbps = self._rates.take(time.monotonic()) if online else (0.0, 0)
        width, height = self._size
        value = {
            "online": int(online),
            "width": width,
            "height": height,
            "fps": fps,
            "kbps": kbps,
            "detect": self.config.motion.enabled,
            "sensitivity": self.config.motion.sensitivity,
        }
        if value == self._reported:
            return
        self._reported = value
        with contextlib.suppress(IVError):  # offline: the client sends the latest later
            await self.device.client.report(channel_path(self.config.number), value)

    # Events (on the event loop)

    def event_started(self, start: EventStart, picture: bytes | None) -> None:
        self.events += 1
        self.device.spawn(self._raise(start, picture))

    def event_ended(self, end: EventEnd, alarm_id: str) -> None:
        self.device.spawn(self._finish(end, alarm_id))

    async def _raise(self, start: EventStart, picture: bytes | None) -> None:
        x0, y0, x1, y1 = start.detection.box
        value = {
            "chn": self.config.number,
            "start": int(start.t),
            "score": start.detection.score,
            "box": [round(x0, 3), round(y0, 3), round(x1, 3), round(y1, 3)],
        }
        log.info("%s: motion (score %.3f)", self.name, start.detection.score)
        await self._event(value)
        if self._recorder is not None and self._recorder.recording:  # a plan is in use
            await self._recorder.event(
                start.detection.bits,
                start=int(start.t),
                end=int(start.t),
                picture=picture,
                live_picture=False,
                event_id=_alarm_id(self, start.t),
                ongoing=True,  # under an event plan, its clip runs until the end comes
            )

    async def _finish(self, end: EventEnd, alarm_id: str) -> None:
        value = {"chn": self.config.number, "start": int(end.start), "end": int(end.end) + 1}
        await self._event(value)
        if self._recorder is not None and self._recorder.recording:  # a plan is in use
            await self._recorder.event(
                end.bits,
                start=int(end.start),
                end=int(end.end) + 1,
                live_picture=False,
                event_id=alarm_id,
            )

    async def _event(self, value: dict[str, Any]) -> None:
        try:
            await self.device.client.event("motion", value)
        except IVError as exc:  # refused for good: the product's model has no motion
            log.warning("%s: Event.motion not sent: %s", self.name, exc)


def _alarm_id(channel: ChannelRunner, t: float) -> str:
    """The cloud event's id: the same for an event's start and its end."""
    return f"m{channel.config.number}x{int(t * 1000):x}"


class _Watcher:
    """Decodes a channel's detection stream on a worker thread and runs the detector on
    ``motion.fps`` pictures a second; hands event changes to the event loop."""

    def __init__(self, channel: ChannelRunner, enabled: bool) -> None:
        self.channel = channel
        settings = channel.config.motion
        self.interval = 1.0 / settings.fps
        self.width = settings.width
        self.detector = channel._make_detector(channel.config)
        self.tracker = EventTracker(settings.cooldown)
        self.decoder = H264Decoder()
        self.worker = SerialWorker(f"detect-{channel.name}", maxsize=120)
        self.loop = asyncio.get_running_loop()
        self._next = 0.0
        self._alarm = ""
        self._skipping = False

    def feed(self, data: bytes, pts: int, t: float) -> None:
        """On the event loop: one access unit, received at ``t`` (the cloud's time)."""
        if not self.worker.submit(self._decode, data, pts, t):
            self._skipping = True  # behind: decode from the next keyframe on

    def close(self) -> None:
        self.worker.close()
        end = self.tracker.close(self.channel.device.client.now())
        if end is not None and self._alarm:
            self.channel.event_ended(end, self._alarm)

    def _decode(self, data: bytes, pts: int, t: float) -> None:
        """On the worker."""
        try:
            frames = self.decoder.decode(data, pts)
        except av.FFmpegError:
            return  # broken data: the next keyframe heals it
        for frame in frames:
            if t < self._next:
                continue
            self._next = t + self.interval
            height = max(2, round(frame.height * self.width / frame.width / 2) * 2)
            gray = frame.reformat(width=self.width, height=height, format="gray").to_ndarray()
            change = self.tracker.update(self.detector.detect(gray, t), t)
            if isinstance(change, EventStart):
                picture = encode_picture(frame, "jpeg")
                self._alarm = _alarm_id(self.channel, change.t)
                self.loop.call_soon_threadsafe(self.channel.event_started, change, picture)
            elif isinstance(change, EventEnd):
                alarm, self._alarm = self._alarm, ""
                self.loop.call_soon_threadsafe(self.channel.event_ended, change, alarm)


class DeviceRunner:
    """One device of the file: its client, media, firmware updater and channels."""

    def __init__(self, config: DeviceConfig, cloud: tuple[str, ...], data: Path) -> None:
        self.config = config
        self.folder = data / config.tid
        self.client = DeviceClient(
            config.certificate,
            list(cloud),
            version=VersionInfo(swVer=config.sw_version, hwVer="iotvideo-gateway"),
            event_dir=self.folder / "events",
        )
        self.media = DeviceMedia(self.client, channels={}, max_viewers=config.max_viewers)
        self.updater = FirmwareUpdater(self.client, folder=self.folder / "firmware")
        self.channels: dict[int, ChannelRunner] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self.client.start(wait=False)
        for channel in self.config.channels:
            await self._add(channel)

    async def _add(self, config: ChannelConfig) -> None:
        runner = ChannelRunner(self, config)
        self.channels[config.number] = runner
        await runner.start()

    async def apply(self, config: DeviceConfig) -> None:
        """Channels added, removed or changed start or stop; the others keep streaming."""
        old = {c.number: c for c in self.config.channels}
        new = {c.number: c for c in config.channels}
        self.config = config
        for number, runner in list(self.channels.items()):
            if new.get(number) != old.get(number):
                await runner.stop()
                del self.channels[number]
                log.info("%s: channel %s stopped", config.name, number)
        for number, channel in new.items():
            if number not in self.channels:
                await self._add(channel)
                log.info("%s: channel %s started", config.name, number)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for runner in list(self.channels.values()):
            await runner.stop()
        self.channels.clear()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        await self.media.close()
        await self.client.stop()


class Gateway:
    """The devices of one config file (see the module's text)."""

    def __init__(self, path: Path, *, env: dict[str, str] | None = None) -> None:
        self.path = path
        self.env = env
        self.devices: dict[str, DeviceRunner] = {}
        self.config: GatewayConfig | None = None
        self._reload = asyncio.Event()
        self._lock = asyncio.Lock()

    async def start(self) -> GatewayConfig:
        """Read the file and start its devices; :class:`ConfigError` if it is unusable."""
        config = await asyncio.to_thread(load_config, self.path, env=self.env)
        await self._apply(config)
        return config

    def reload_soon(self) -> None:
        """From a signal handler: read the file again (SIGHUP)."""
        self._reload.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Start, then reload on each :meth:`reload_soon` until ``stop`` is set."""
        await self.start()
        try:
            while not stop.is_set():
                waits = {
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(self._reload.wait()),
                }
                _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                if self._reload.is_set():
                    self._reload.clear()
                    await self.reload()
        finally:
            await self.stop()

    async def reload(self) -> None:
        """Read the file again and apply it; a file that cannot be used changes nothing."""
        from iotvideo.device.gateway.config import ConfigError

        try:
            config = await asyncio.to_thread(load_config, self.path, env=self.env)
        except ConfigError as exc:
            log.error("%s; the gateway keeps running as it was", exc)
            return
        log.info("reloading %s", self.path)
        await self._apply(config)

    async def _apply(self, config: GatewayConfig) -> None:
        async with self._lock:
            for problem in config.problems:
                log.error("%s", redact(problem))
            old = self.config
            self.config = config
            wanted = {d.tid: d for d in config.devices}
            for tid, runner in list(self.devices.items()):
                device = wanted.get(tid)
                if device is None or _restart(runner.config, device, old, config):
                    await runner.stop()
                    del self.devices[tid]
                    log.info("%s stopped", runner.config.name)
            for tid, device in wanted.items():
                running = self.devices.get(tid)
                if running is not None:
                    await running.apply(device)
                    continue
                started = DeviceRunner(device, config.cloud, config.data)
                self.devices[tid] = started
                await started.start()
                log.info("%s started with %d channel(s)", device.name, len(device.channels))

    async def stop(self) -> None:
        async with self._lock:
            for runner in list(self.devices.values()):
                await runner.stop()
            self.devices.clear()


def _restart(
    running: DeviceConfig, wanted: DeviceConfig, old: GatewayConfig | None, new: GatewayConfig
) -> bool:
    """Whether a device must start anew (not only some of its channels)."""
    if old is None or old.cloud != new.cloud or old.data != new.data:
        return True
    return (running.certificate, running.max_viewers, running.sw_version) != (
        wanted.certificate,
        wanted.max_viewers,
        wanted.sw_version,
    )
