"""One camera channel pulled from its device once, however many clients read it.

A :class:`CameraFeed` holds one :class:`~iotvideo.app.player.MonitorPlayer` in
passthrough (``decode_video = False``): the H.264 access units arrive as the device sent
them and go to every subscriber untouched. It keeps the current group of pictures (the
last keyframe and what followed), so a new subscriber starts on a keyframe at once, and
asks the device for a new keyframe when it has none.

Audio goes to subscribers too, restamped onto the video's timeline
(:mod:`iotvideo.app.restream.audio`), as the device sent it (``audio/PCMU``...) and, while
some subscriber wants it (:meth:`CameraFeed.want_aac`), also as AAC (``audio/AAC``),
transcoded once for all of them.

It starts with its first subscriber and stops ``idle`` seconds after its last one leaves.
While it has subscribers and the device is away (it restarted, its network dropped), it
reconnects with backoff; subscribers stay subscribed and receive the new stream's
packets, beginning with a keyframe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from iotvideo.app.player import EncodedPacket, MonitorPlayer
from iotvideo.app.restream.audio import AacTranscoder, AudioTimeline
from iotvideo.app.status import LinkStatus
from iotvideo.protocol.errors import ErrorCode, IVError

if TYPE_CHECKING:
    from iotvideo.app.sdk import IoTVideo

__all__ = ["CameraFeed", "FeedStats", "Subscriber"]

log = logging.getLogger("iotvideo.app.restream")

#: Called on the event loop with each packet; keep it short (push, queue, count).
Subscriber = Callable[[EncodedPacket], object]

#: Longest a group of pictures is kept (a camera whose keyframes are further apart than
#: this is started from a requested keyframe instead).
MAX_GOP_PACKETS = 600
#: Seconds between pulls while clients wait for a device that is away (at most 2: a
#: device that comes back is playing again within a few seconds).
BACKOFF = (0.5, 1.0, 2.0)
#: What ends a pull for good (its subscribers too): no such device, no relation, a
#: refused credential.
REFUSALS = frozenset(
    {
        ErrorCode.IVASrvErr_dst_notexsit,
        ErrorCode.IVASrvErr_dst_error_relation,
        ErrorCode.IVTermErr_msg_calling_check_token_error,
    }
)
#: A keyframe this young (seconds) starts a new subscriber as it is.
FRESH_KEYFRAME = 0.1


@dataclass
class FeedStats:
    """What a feed has done, for /metrics."""

    pulls: int = 0
    failed_pulls: int = 0
    packets: int = 0
    bytes: int = 0
    #: Seconds from the pull's start to its first keyframe, per successful pull.
    startups: list[float] = field(default_factory=list)


class CameraFeed:
    """Device ``tid``'s channel ``source`` ('' for the first), pulled through ``sdk``."""

    def __init__(
        self,
        sdk: IoTVideo,
        tid: str,
        source: str = "",
        *,
        definition: str = "high",
        idle: float = 10.0,
        connect_timeout: float = 10.0,
        keyframe_wait: float = 1.5,
        player_factory: Callable[[], MonitorPlayer] | None = None,
        sign_in: Callable[[], Awaitable[IoTVideo]] | None = None,
    ) -> None:
        self.sdk = sdk
        #: Signs a link in for each pull (a DescribeStream ticket's), instead of ``sdk``.
        self._sign_in = sign_in
        #: Set when the pull may not go on (the device or the relation refused it): the
        #: subscribers were ended, and new ones start a new attempt.
        self.refused: IVError | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.tid = tid
        self.source = source
        self.definition = definition
        self.idle = idle
        self.connect_timeout = connect_timeout
        self._player_factory = player_factory
        self.stats = FeedStats()
        #: The last keyframe and what followed it (video only).
        self.gop: list[EncodedPacket] = []
        #: The player of the current pull (None between pulls).
        self.player: MonitorPlayer | None = None
        #: Why the last pull failed or ended (None while it runs).
        self.error: IVError | None = None
        self._subscribers: list[Subscriber] = []
        #: Subscribers waiting for a keyframe, with the timer that admits them anyway.
        self._waiting: dict[Subscriber, asyncio.TimerHandle] = {}
        self.keyframe_wait = keyframe_wait
        self._task: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._keyframe = asyncio.Event()
        self._stopping = False
        #: The device's audio codec (opus, pcmu, pcma), None without audio; known once
        #: a pull was answered (``_answered``).
        self.audio_codec: str | None = None
        self._answered = asyncio.Event()
        self._timeline = AudioTimeline()
        self._aac_users = 0
        self._transcoder: AacTranscoder | None = None

    @property
    def name(self) -> str:
        return f"{self.tid}/{self.source or 'first'}"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def clients(self) -> int:
        return len(self._subscribers) + len(self._waiting)

    # Subscribers

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Receive every packet from now on (on the event loop), beginning with a
        keyframe; starts the pull if it is not running. Returns the function that
        unsubscribes.

        Where it begins: a keyframe that has just arrived starts it at once. Otherwise
        the device is asked for a new one (a camera that encodes for us sends it within
        a round trip) and the subscriber begins with it; when none comes within
        ``keyframe_wait`` seconds (a camera passed through, whose keyframes come when
        they come), it begins with the current group of pictures, replayed."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        loop = asyncio.get_running_loop()
        fresh = bool(self.gop) and time.monotonic() - self.gop[0].arrived <= FRESH_KEYFRAME
        if fresh or (self.gop and self.player is None):
            self._admit(subscriber)
        else:
            self._waiting[subscriber] = loop.call_later(self.keyframe_wait, self._admit, subscriber)
            if self.player is not None:
                self.player.request_keyframe()
        self.start()

        def unsubscribe() -> None:
            timer = self._waiting.pop(subscriber, None)
            if timer is not None:
                timer.cancel()
            with contextlib.suppress(ValueError):
                self._subscribers.remove(subscriber)
            if (
                not self._subscribers
                and not self._waiting
                and self.running
                and self._idle_timer is None
            ):
                self._idle_timer = loop.call_later(self.idle, self._idle_stop)

        return unsubscribe

    def _admit(self, subscriber: Subscriber) -> None:
        """Start ``subscriber`` with the current group of pictures (if any)."""
        self._waiting.pop(subscriber, None)
        for packet in self.gop:
            subscriber(packet)
        self._subscribers.append(subscriber)

    # Audio

    async def audio(self, timeout: float = 5.0) -> str | None:
        """The device's audio codec (``opus``, ``pcmu``, ``pcma``), or None when it sends
        none; starts the pull for as long as it takes to learn it (None after ``timeout``)."""
        if self._answered.is_set():
            return self.audio_codec
        unsubscribe = self.subscribe(lambda _packet: None)
        try:
            async with asyncio.timeout(timeout):
                await self._answered.wait()
        except TimeoutError:
            log.info("%s: no answer within %g s; serving video only", self.name, timeout)
        finally:
            unsubscribe()
        return self.audio_codec

    def want_aac(self) -> Callable[[], None]:
        """Have the audio sent as AAC too (``audio/AAC``, ADTS frames at 48 kHz mono),
        until the returned function is called; one transcoder however many want it."""
        self._aac_users += 1
        if self._transcoder is None:
            self._transcoder = AacTranscoder(self.name, self._deliver)
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._aac_users -= 1
            if self._aac_users == 0 and self._transcoder is not None:
                self._transcoder.close()
                self._transcoder = None

        return release

    def _deliver(self, packet: EncodedPacket) -> None:
        self.stats.bytes += len(packet.data)
        for subscriber in list(self._subscribers):
            try:
                subscriber(packet)
            except Exception:
                log.exception("%s: a subscriber failed", self.name)

    async def keyframe(self, timeout: float = 10.0) -> EncodedPacket:
        """The current keyframe; waits for one (starting the pull for as long as it is
        asked for) up to ``timeout`` seconds. TimeoutError without one; the pull's error
        when it failed."""
        if self.gop:
            return self.gop[0]
        unsubscribe = self.subscribe(lambda _packet: None)
        try:
            async with asyncio.timeout(timeout):
                while not self.gop:
                    self._keyframe.clear()
                    await self._keyframe.wait()
            return self.gop[0]
        except TimeoutError:
            if self.error is not None:
                raise self.error from None
            raise
        finally:
            unsubscribe()

    # The pull

    def start(self) -> None:
        if not self.running or self._stopping:
            self._stopping = False
            self.refused = None
            self._task = asyncio.ensure_future(self._pull_while_wanted())

    async def stop(self) -> None:
        """Stop pulling now (subscribers stay; they get nothing more)."""
        self._stopping = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _idle_stop(self) -> None:
        self._idle_timer = None
        if not self._subscribers and not self._waiting:
            log.info("%s: no client for %g s, stopping the pull", self.name, self.idle)
            self._stopping = True
            if self._task is not None:
                self._task.cancel()  # its player hangs up in the background

    async def _pull_while_wanted(self) -> None:
        failures = 0
        while not self._stopping:
            began = time.monotonic()
            ok = await self._pull_once()
            if self._stopping or not (self._subscribers or self._waiting):
                return
            failures = 0 if ok and time.monotonic() - began > 10 else failures + 1
            delay = BACKOFF[min(failures, len(BACKOFF)) - 1] if failures else 0.2
            log.info("%s: the pull ended (%s); again in %.1f s", self.name, self.error, delay)
            await asyncio.sleep(delay)

    def _refuse(self, error: IVError) -> None:
        """The pull may not go on: every subscriber is ended (``None``), at once."""
        self.refused = error
        log.warning("%s: refused: %s", self.name, error)
        for timer in self._waiting.values():
            timer.cancel()
        ended = [*self._subscribers, *self._waiting]
        self._subscribers.clear()
        self._waiting.clear()
        for subscriber in ended:
            with contextlib.suppress(Exception):
                subscriber(None)  # type: ignore[arg-type]
        self._stopping = True

    async def _pull_once(self) -> bool:
        """One connection to the device, until it ends. True when it got a picture."""
        sdk = self.sdk
        signed_in: IoTVideo | None = None
        if self._sign_in is not None:
            try:
                sdk = signed_in = await self._sign_in()
            except IVError as exc:
                self.error = exc
                self.stats.failed_pulls += 1
                if exc.code in REFUSALS:
                    self._refuse(exc)
                return False
        try:
            return await self._pull_with(sdk, signed_in)
        finally:
            if signed_in is not None:
                with contextlib.suppress(IVError):
                    await signed_in.unregister()

    async def _pull_with(self, sdk: IoTVideo, signed_in: IoTVideo | None) -> bool:
        player = (
            self._player_factory()
            if self._player_factory is not None
            else MonitorPlayer(
                self.tid, sdk=sdk, source_id=self.source or None, definition=self.definition
            )
        )
        if signed_in is not None:
            # The cloud ends a ticket's session when the vendor disables the device's
            # streaming: the pull ends with it, for good.
            def on_status(status: LinkStatus) -> None:
                if status is LinkStatus.TOKEN_FAILED and self.player is player:
                    self._refuse(
                        IVError.of(
                            ErrorCode.IVASrvErr_dst_error_relation,
                            "the cloud ended the stream (its streaming was disabled?)",
                        )
                    )
                    stopping = player.stop()
                    self._background.add(stopping)
                    stopping.add_done_callback(self._background.discard)

            signed_in.add_status_listener(on_status)
        player.decode_video = False
        player.mute = True
        self.stats.pulls += 1
        began = time.monotonic()
        got_picture = False

        timeline = self._timeline = AudioTimeline()

        def on_packet(packet: EncodedPacket) -> None:
            nonlocal got_picture
            if not packet.mime.lower().startswith("video/"):
                placed = timeline.place(packet)
                if placed is None or not self.gop:
                    return  # before the first picture: nothing to play it with
                restamped = EncodedPacket(packet.mime, packet.data, placed, False, packet.arrived)
                self._deliver(restamped)
                if self._transcoder is not None:
                    self._transcoder.add(restamped)
                return
            timeline.video(packet)
            if packet.keyframe:
                for waiting, timer in list(self._waiting.items()):
                    timer.cancel()  # it begins with this keyframe
                    self._waiting.pop(waiting)
                    self._subscribers.append(waiting)
                if not got_picture:
                    got_picture = True
                    self.stats.startups.append(time.monotonic() - began)
                    del self.stats.startups[:-100]
                self.gop = [packet]
                self._keyframe.set()
            elif self.gop and len(self.gop) < MAX_GOP_PACKETS:
                self.gop.append(packet)
            elif self.gop:
                self.gop = []  # too long a group: the next subscriber asks for a keyframe
            else:
                return  # nothing can be decoded before the first keyframe
            self.stats.packets += 1
            self._deliver(packet)

        player.add_packet_listener(on_packet)
        self.player = player
        self.error = None
        try:
            try:
                await player.play(timeout=self.connect_timeout)
                audio = (player.answer or {}).get("audio") or {}
                self.audio_codec = str(audio["codec"]).lower() if audio.get("codec") else None
                self._answered.set()
            except IVError as exc:
                self.error = exc
                self.stats.failed_pulls += 1
                log.warning("%s: cannot pull: %s", self.name, exc)
                if exc.code in REFUSALS:
                    self._refuse(exc)
                return False
            player.request_keyframe()
            self.error = await player.wait_ended()
            return got_picture
        finally:
            self.player = None
            self.gop = []
            with contextlib.suppress(IVError):
                await asyncio.shield(player.stop())
