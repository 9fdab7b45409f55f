"""The memory card: ``PlaybackPlayer`` (the seed's 回放播放器), its lists, ``FileDownloader``.

::

    days = await get_record_dates(device_id, "2026-12", sdk=sdk)            # [1, 2, 5]
    page = await get_playback_list(device_id, start_ms, end_ms, sdk=sdk)     # PlaybackPage
    player = PlaybackPlayer(device_id, page.items[0], seek_to_time=t, sdk=sdk)
    await player.play()
    player.speed = 8.0                      # 0.5..32; above 4x keyframes only
    await player.pause(); await player.resume()
    await player.seek(t2, page.items[3])    # lands on the keyframe at or before t2
    print(player.position, player.duration)
    await player.stop()

    downloader = FileDownloader(device_id, sdk=sdk)
    await downloader.download_to("clip.ts", page.items[0].start_time)   # resumes a part file

Playback plays the device's own recordings (its memory card) peer to peer, like the live
players; each video frame carries its recording time, so :attr:`PlaybackPlayer.position`
is the time (UNIX ms) of the picture shown. Downloads go over the same kind of connection,
one file per device at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from iotvideo.app.calls import Completion, operation
from iotvideo.app.player import Connection, MonitorPlayer, PlayerStatus
from iotvideo.media.h264 import recording_time
from iotvideo.media.webrtc import RTCPeerConnection, codecs_of, tap_receiver
from iotvideo.protocol import media as wire
from iotvideo.protocol.errors import ErrorCode, IVError

if TYPE_CHECKING:
    import av

    from iotvideo.app.sdk import IoTVideo

__all__ = [
    "DownloadResult",
    "FileDownloader",
    "PlaybackItem",
    "PlaybackPage",
    "PlaybackPlayer",
    "get_playback_list",
    "get_record_dates",
]

#: The list format this SDK reads (21037 for others).
LIST_VERSION = 1


@dataclass(frozen=True)
class PlaybackItem:
    """IVPlaybackItem: one recording file on the card (times in UNIX ms)."""

    start_time: int
    end_time: int
    type: str = "continuous"
    size: int = 0

    @property
    def duration(self) -> int:
        """Milliseconds."""
        return self.end_time - self.start_time

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start_time,
            "end": self.end_time,
            "duration": self.duration,
            "type": self.type,
            "size": self.size,
        }


@dataclass(frozen=True)
class PlaybackPage:
    """One page of a playback list."""

    items: list[PlaybackItem]
    total: int
    page: int
    pages: int


def _sdk(sdk: IoTVideo | None) -> IoTVideo:
    from iotvideo.app.sdk import IoTVideo

    return sdk or IoTVideo.default()


def _malformed(what: str) -> IVError:
    return IVError.of(ErrorCode.IVPlayerError_PlaybackDataErr, f"the device's {what} is malformed")


def _check_version(reply: Any, what: str) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise _malformed(what)
    if reply.get("version") != LIST_VERSION:
        raise IVError.of(
            ErrorCode.IVPlayerError_PlaybackListVerErr,
            f"the device's {what} is version {reply.get('version')!r}; this SDK reads "
            f"{LIST_VERSION}: update the SDK or the device",
        )
    return reply


async def get_record_dates(
    device_id: str,
    month: str | None = None,
    *,
    sdk: IoTVideo | None = None,
    source_id: str | int | None = None,
    tz_offset_minutes: int | None = None,
) -> list[int]:
    """The days (1..31) of ``month`` (``YYYY-MM``, default this month) that have
    recordings on the device's card, in the local time zone (or ``tz_offset_minutes`` east
    of UTC). An empty list when there are none."""
    month = month or time.strftime("%Y-%m")
    if tz_offset_minutes is None:
        tz_offset_minutes = round(time.localtime().tm_gmtoff / 60)
    request: dict[str, Any] = {"tid": device_id, "month": month, "tz": tz_offset_minutes}
    if source_id is not None:
        request["source"] = str(source_id)
    reply = _check_version(await _sdk(sdk).request("card.days", request), "date list")
    days = reply.get("days")
    if not isinstance(days, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 31 for d in days
    ):
        raise _malformed("date list")
    return list(days)


async def get_playback_list(
    device_id: str,
    start_time: int = 0,
    end_time: int | None = None,
    *,
    page: int = 0,
    per_page: int = 100,
    sdk: IoTVideo | None = None,
    source_id: str | int | None = None,
) -> PlaybackPage:
    """The recording files overlapping ``start_time``..``end_time`` (UNIX ms), oldest
    first, one page of ``per_page`` (from page 0). 21032 when there are none, 21033 when
    the device's reply is malformed."""
    if end_time is None:
        end_time = int(time.time() * 1000) + 86_400_000
    if not 0 <= start_time < end_time or page < 0 or not 1 <= per_page <= 500:
        raise IVError.of(
            ErrorCode.IVPlayerError_InvalidParameter,
            "0 <= start_time < end_time, page >= 0, per_page 1..500",
        )
    request: dict[str, Any] = {
        "tid": device_id,
        "start": start_time,
        "end": end_time,
        "page": page,
        "size": per_page,
    }
    if source_id is not None:
        request["source"] = str(source_id)
    reply = _check_version(await _sdk(sdk).request("card.list", request), "playback list")
    try:
        items = [
            PlaybackItem(
                int(i["start"]), int(i["end"]), str(i.get("type", "")), int(i.get("size", 0))
            )
            for i in reply["items"]
        ]
        total, pages = int(reply["total"]), int(reply["pages"])
    except (KeyError, TypeError, ValueError):
        raise _malformed("playback list") from None
    if any(i.end_time < i.start_time for i in items):
        raise _malformed("playback list")
    if total == 0:
        raise IVError.of(
            ErrorCode.IVPlayerError_PlaybackListEmpty, "no recordings in that time range"
        )
    return PlaybackPage(items, total, page, pages)


def _check_speed(speed: float) -> float:
    if isinstance(speed, bool) or not wire.MIN_SPEED <= float(speed) <= wire.MAX_SPEED:
        raise IVError.of(
            ErrorCode.IVPlayerError_InvalidParameter,
            f"speed must be {wire.MIN_SPEED:g}..{wire.MAX_SPEED:g}",
        )
    return float(speed)


class PlaybackPlayer(MonitorPlayer):
    """IVPlaybackPlayer: plays the device's card from ``seek_to_time`` (UNIX ms; default
    the start of ``playback_item``) with pause/resume, seek, speed, duration and position,
    and the other players' snapshot, recording, mute and data channel.

    Delegate methods besides the players': ``player_did_update_position(player, ms)``
    for every picture shown, ``player_did_reach_end(player, ms)`` at the end of the
    recordings. Operations the current state does not allow raise 21040.
    """

    kind = "playback"

    def __init__(
        self,
        device_id: str,
        playback_item: PlaybackItem | None = None,
        seek_to_time: int | None = None,
        *,
        source_id: str | int | None = None,
        sdk: IoTVideo | None = None,
        speed: float = 1.0,
        relay_only: bool = False,
    ) -> None:
        super().__init__(device_id, source_id=source_id, sdk=sdk, relay_only=relay_only)
        if playback_item is None and seek_to_time is None:
            raise IVError.of(
                ErrorCode.IVPlayerError_InvalidParameter, "give a playback item or a time"
            )
        self.playback_item = playback_item
        self.seek_to_time = (
            seek_to_time if seek_to_time is not None else playback_item.start_time  # type: ignore[union-attr]
        )
        self._speed = _check_speed(speed)
        #: Recording time (UNIX ms) of the picture shown; None before the first.
        self.position: int | None = None
        #: Whether the device said the recordings ended, and whether playback is paused.
        self.reached_end = False
        self.paused = False
        self._times: OrderedDict[int, int] = OrderedDict()

    # What the seed's player shows

    @property
    def duration(self) -> int:
        """Milliseconds of the current item (0 without one)."""
        return self.playback_item.duration if self.playback_item is not None else 0

    @property
    def progress(self) -> int:
        """Milliseconds into the current item of the picture shown."""
        if self.position is None or self.playback_item is None:
            return 0
        return max(0, self.position - self.playback_item.start_time)

    def position_of(self, frame: av.VideoFrame) -> int | None:
        """The recording time (UNIX ms) of a frame this player decoded (recent ones)."""
        return self._times.get(int(frame.pts or 0))

    @property
    def speed(self) -> float:
        """0.5..32 (default 1). Setting it while playing tells the device (use
        :meth:`set_speed` to wait for its answer)."""
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        value = _check_speed(value)
        if self.connected:
            task = asyncio.ensure_future(self.set_speed(value))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        else:
            self._speed = value

    @operation()
    async def set_speed(
        self, speed: float, *, timeout: float = 5.0, completion: Completion | None = None
    ) -> None:
        speed = _check_speed(speed)
        if self.connected:
            await self._control_request("speed", "speed.done", timeout, value=speed)
        self._speed = speed

    # Control

    def _need_playing(self) -> None:
        playing = (PlayerStatus.LOADING, PlayerStatus.PLAYING, PlayerStatus.PAUSED)
        if not self.connected or self.status not in playing:
            raise IVError.of(
                ErrorCode.IVPlayerError_OperationNotAllowedNow,
                f"the player is {self.status.value}; play() first",
            )

    @operation()
    async def pause(
        self, *, timeout: float = 5.0, completion: Completion | None = None
    ) -> int | None:
        """Hold the picture shown; 21040 unless playing. Returns the recording time of
        the last frame the device sent (the picture held once it arrives)."""
        self._need_playing()
        if self.paused:
            raise IVError.of(ErrorCode.IVPlayerError_OperationNotAllowedNow, "already paused")
        reply = await self._control_request("pause", "pause.done", timeout)
        self.paused = True
        self._set_status(PlayerStatus.PAUSED)
        held = reply.get("time")
        return int(held) if isinstance(held, int | float) else None

    @operation()
    async def resume(self, *, timeout: float = 5.0, completion: Completion | None = None) -> None:
        """Go on from the picture shown; 21040 unless paused."""
        self._need_playing()
        if not self.paused:
            raise IVError.of(ErrorCode.IVPlayerError_OperationNotAllowedNow, "not paused")
        await self._control_request("resume", "resume.done", timeout)
        self.paused = False
        self._set_status(PlayerStatus.PLAYING)

    @operation()
    async def seek(
        self,
        time_ms: int,
        playback_item: PlaybackItem | None = None,
        *,
        timeout: float = 10.0,
        completion: Completion | None = None,
    ) -> int:
        """Play from ``time_ms`` (of ``playback_item``, any file); returns the time of the
        keyframe at or before it, where playback starts. While paused, that picture is
        shown and held. 20137 when nothing is recorded at or after ``time_ms``."""
        self._need_playing()
        if isinstance(time_ms, bool) or not isinstance(time_ms, int) or time_ms < 0:
            raise IVError.of(ErrorCode.IVPlayerError_InvalidParameter, "time_ms: UNIX ms")
        reply = await self._control_request("seek", "seek.done", timeout, time=time_ms)
        if playback_item is not None:
            self.playback_item = playback_item
        self.reached_end = False
        return int(reply.get("time", time_ms))

    @operation()
    async def start_talking(
        self, capture: Any = None, *, completion: Completion | None = None
    ) -> None:
        raise IVError.of(ErrorCode.IVPlayerError_OperationNotAllowedNow, "playback has no talk")

    @operation()
    async def switch_definition(
        self, definition: str, *, timeout: float = 5.0, completion: Completion | None = None
    ) -> tuple[int, int]:
        raise IVError.of(
            ErrorCode.IVPlayerError_OperationNotAllowedNow,
            "playback plays the definition the card recorded",
        )

    # Connection

    def _offer_fields(self) -> dict[str, Any]:
        return {"at": int(self.seek_to_time), "speed": self._speed}

    def _setup_media(self, pc: RTCPeerConnection) -> None:
        video = pc.addTransceiver("video", direction="recvonly")
        video.setCodecPreferences(codecs_of("video", "video/H264"))
        self._decode_failed = tap_receiver(video.receiver, self._on_encoded)
        audio = pc.addTransceiver("audio", direction="recvonly")
        audio.setCodecPreferences(codecs_of("audio", "audio/opus"))
        tap_receiver(audio.receiver, self._on_encoded)

    def _on_video(self, data: bytes, timestamp: int, now: float) -> None:
        at = recording_time(data)
        if at is not None:
            self._times[timestamp] = at
            while len(self._times) > 512:
                self._times.popitem(last=False)
        super()._on_video(data, timestamp, now)

    def _on_frame(self, frame: av.VideoFrame) -> None:
        at = self._times.get(int(frame.pts or 0))
        if at is not None and not self._ended.is_set():
            self.position = at
        super()._on_frame(frame)
        if at is not None and not self._ended.is_set():
            self._tell("player_did_update_position", self, at)

    def _on_device_says(self, op: str, message: dict[str, Any]) -> bool:
        if op != "end":
            return False
        self.reached_end = True
        self._tell("player_did_reach_end", self, message.get("time"))
        return True


@dataclass(frozen=True)
class DownloadResult:
    """How a download call ended: the file's size, the bytes received by this call, and
    whether it was paused (resume with ``offset`` = bytes held) or finished."""

    size: int
    offset: int
    received: int
    paused: bool

    @property
    def complete(self) -> bool:
        return not self.paused and self.offset + self.received == self.size


#: What a device without download support (an older firmware) answers a download offer.
_NO_DOWNLOAD = (
    ErrorCode.IVTermErr_msg_user_cmd_param_error,
    ErrorCode.IVTermErr_msg_user_cmd_type_error,
    ErrorCode.IVTermErr_msg_user_cmd_version_error,
)


class FileDownloader(Connection):
    """IVFileDownloader: a card recording file, from a byte offset, over a connection of
    its own (made by the first download). One file per device at a time (21060); the
    device hangs up 10 s after a pause or the end without a new request (20136)."""

    kind = "download"

    def __init__(
        self,
        device_id: str,
        *,
        source_id: str | int | None = None,
        sdk: IoTVideo | None = None,
        relay_only: bool = False,
    ) -> None:
        super().__init__(device_id, source_id=source_id, sdk=sdk, relay_only=relay_only)
        self._file: Any = None
        self._outcome: asyncio.Future[dict[str, Any]] | None = None
        self._progress: Callable[[bytes], object] | None = None
        self.bytes_received = 0

    def _setup_media(self, pc: RTCPeerConnection) -> None:
        self._file = pc.createDataChannel(wire.FILE_CHANNEL)
        self._file.on("message", self._on_file)

    def _on_file(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.bytes_received += len(message)
            if self._progress is not None:
                try:
                    self._progress(message)
                except Exception as exc:  # the app's sink failed: stop, say why
                    self._finish_with(exc)
            return
        try:
            outcome = wire.parse_control(message)
        except ValueError:
            return
        waiter = self._outcome
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    def _finish_with(self, exc: BaseException) -> None:
        waiter = self._outcome
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _lost(self, error: IVError) -> None:
        super()._lost(error)
        self._finish_with(error)

    @operation()
    async def download(
        self,
        file_time: int,
        offset: int = 0,
        *,
        on_ready: Callable[[int], object] | None = None,
        on_data: Callable[[bytes], object] | None = None,
        timeout: float = 10.0,
        completion: Completion | None = None,
    ) -> DownloadResult:
        """Download the file that starts at ``file_time`` (an item's ``start_time``) from
        ``offset``; ``on_ready(size)`` first, then ``on_data(bytes)`` for each piece.
        Returns when the file is complete or paused (:meth:`pause`); raises IVError:
        21060 busy, 21062 offset beyond the size, 21064 no such file, 21061 unreadable,
        21070 size mismatch, 21072 no answer, 20136 hung up after waiting, IVConnError."""
        if self._outcome is not None and not self._outcome.done():
            raise IVError.of(
                ErrorCode.IVDownloadError_DownloaderBusy, "this downloader is downloading"
            )
        if not self.connected:
            if self._teardown_task is not None:
                await self._teardown_task
            try:
                await self.connect(timeout=timeout)
            except IVError as exc:
                if exc.code in _NO_DOWNLOAD:
                    raise IVError.of(
                        ErrorCode.IVDownloadError_DevNoResponse,
                        f"the device cannot download (its firmware may not support it): {exc}",
                    ) from None
                raise
        if self._file is None or self._file.readyState != "open":
            await self._file_open(timeout)
        self._outcome = asyncio.get_running_loop().create_future()
        self._progress = on_data
        self.bytes_received = 0
        try:
            ready = await self._ask_ready(file_time, offset, timeout)
            size = int(ready.get("size", 0))
            if on_ready is not None:
                on_ready(size)
            outcome = await self._outcome
        finally:
            self._progress = None
            if not self._outcome.done():
                self._outcome.cancel()
        op = outcome.get("op")
        if op == "error":
            raise IVError.of(
                int(outcome.get("code", ErrorCode.IVDownloadError_DevUnknownError)),
                str(outcome.get("msg") or "the device could not send the file"),
            )
        if op == "paused":
            return DownloadResult(size, offset, self.bytes_received, True)
        if self.bytes_received != size - offset:
            raise IVError.of(
                ErrorCode.IVDownloadError_DataSizeAbnormal,
                f"received {self.bytes_received} bytes of the {size - offset} expected",
            )
        return DownloadResult(size, offset, self.bytes_received, False)

    async def _file_open(self, timeout: float) -> None:
        """The file channel opens a moment after the others; the device has it once the
        app sees it open."""
        channel = self._file
        opened = asyncio.Event()
        if channel is not None:
            channel.once("open", opened.set)
            if channel.readyState == "open":
                return
        try:
            async with asyncio.timeout(timeout):
                await opened.wait()
        except TimeoutError:
            raise IVError.of(
                ErrorCode.IVDownloadError_DevNoResponse, "the file channel did not open"
            ) from None

    async def _ask_ready(self, file_time: int, offset: int, timeout: float) -> dict[str, Any]:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise IVError.of(ErrorCode.IVDownloadError_IncorrectOffset, "offset: bytes held, >= 0")
        try:
            reply: dict[str, Any] = await self._control_request(
                "download", "download.ready", timeout, file_time=int(file_time), offset=offset
            )
        except IVError as exc:
            if exc.code == ErrorCode.IVPlayerError_DeviceOperationFailed:
                raise IVError.of(
                    ErrorCode.IVDownloadError_DevNoResponse,
                    f"the device did not answer the download in {timeout:g} s",
                ) from None
            raise
        return reply

    def download_playback_file(
        self,
        file_time: int,
        offset: int,
        ready: Callable[[int], object],
        progress: Callable[[bytes], object],
        paused: Callable[[], object],
        success: Callable[[], object],
        failure: Callable[[IVError], object],
    ) -> asyncio.Task[None]:
        """The seed's callback form of :meth:`download` (call it on the SDK's loop): ``ready``
        (file size), ``progress`` (each piece), then ``paused``, ``success`` or
        ``failure``. Returns the task."""

        async def run() -> None:
            try:
                result = await self.download(file_time, offset, on_ready=ready, on_data=progress)
            except IVError as exc:
                failure(exc)
                return
            except Exception as exc:
                failure(IVError.of(ErrorCode.IVDownloadError_DevUnknownError, str(exc)))
                return
            (paused if result.paused else success)()

        return asyncio.ensure_future(run())

    def pause(self) -> None:
        """Ask the device to stop sending (``paused`` follows, with the bytes held)."""
        if self.connected and self._ctl is not None and self._ctl.readyState == "open":
            self._ctl.send(wire.control("download.pause"))

    @operation()
    async def stop(self, *, completion: Completion | None = None) -> None:
        """Stop downloading and disconnect."""
        self._finish_with(IVError.of(ErrorCode.IVConnError_Disconnected, "stopped"))
        await self.disconnect()

    @operation()
    async def download_to(
        self,
        path: str | Path,
        file_time: int,
        *,
        progress: Callable[[int, int], object] | None = None,
        timeout: float = 10.0,
        completion: Completion | None = None,
    ) -> DownloadResult:
        """Download into ``path``, resuming from its size when it already holds part of
        the file; ``progress(bytes_held, size)`` as pieces arrive. Writes happen off the
        event loop."""
        target = Path(path)
        held = await asyncio.to_thread(lambda: target.stat().st_size if target.exists() else 0)
        pending: list[bytes] = []
        wake = asyncio.Event()
        total = {"size": 0, "held": held}
        done = False

        def ready(size: int) -> None:
            total["size"] = size
            if progress is not None:
                progress(held, size)

        def data(piece: bytes) -> None:
            pending.append(piece)
            total["held"] += len(piece)
            wake.set()
            if progress is not None:
                progress(total["held"], total["size"])

        async def writer() -> None:
            out: BinaryIO | None = None  # opened at the first bytes: a refusal leaves no file
            try:
                while True:
                    await wake.wait()
                    wake.clear()
                    batch = b"".join(pending)
                    pending.clear()
                    if batch:
                        if out is None:
                            out = await asyncio.to_thread(target.open, "ab")
                        await asyncio.to_thread(out.write, batch)
                    if done and not pending:
                        return
            finally:
                if out is not None:
                    await asyncio.to_thread(out.close)

        task = asyncio.ensure_future(writer())
        try:
            return await self.download(
                file_time, held, on_ready=ready, on_data=data, timeout=timeout
            )
        finally:
            done = True
            wake.set()
            with contextlib.suppress(Exception):
                await task
