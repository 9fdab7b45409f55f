"""Playback of the memory card and file download, app to device through the cloud.

Most tests play a card filled with a test-pattern recording (each picture's burned-in clock
is its recording time), so every position is checked against the picture itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest

from iotvideo.app.playback import (
    FileDownloader,
    PlaybackItem,
    PlaybackPlayer,
    get_playback_list,
    get_record_dates,
)
from iotvideo.app.player import MonitorPlayer, PlayerStatus
from iotvideo.device.card import Card, fill_test_recording
from iotvideo.media.audio import dominant_frequency
from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.world import World, app_sdk, device_client
from tests.live.helpers import Live, live, stamp_of, take_frames
from tests.support import ffprobe

SECONDS = 96  # of recording: files of 10 s, a keyframe every 2 s, 15 fps
GOP_MS = 2000


@dataclass(frozen=True)
class Recorded:
    folder: Path
    start: int
    end: int


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    folder = tmp_path_factory.mktemp("card")
    start = (int(time.time()) - 3600) * 1000
    card = Card(folder, file_seconds=10)
    card.mount()
    fill_test_recording(card, start, SECONDS)
    card.close()
    return Recorded(folder, start, start + SECONDS * 1000)


def card_copy(recorded: Recorded, tmp_path: Path) -> Card:
    """A card of its own (a test may change or remove it)."""
    folder = tmp_path / "card"
    shutil.copytree(recorded.folder, folder)
    card = Card(folder, file_seconds=10)
    card.mount()
    return card


@asynccontextmanager
async def camera(world: World, card: Card, **options: Any) -> AsyncIterator[Live]:
    """The camera serving ``card`` (not recording onto it unless asked)."""
    options.setdefault("card_recording", False)
    try:
        async with live(world, card=card, **options) as lv:
            yield lv
    finally:
        card.close()


async def items(lv: Live, world: World, recorded: Recorded) -> list[PlaybackItem]:
    page = await get_playback_list(world.device.tid, recorded.start, recorded.end, sdk=lv.sdk)
    return page.items


async def timed_frames(player: PlaybackPlayer, seconds: float) -> list[tuple[float, av.VideoFrame]]:
    """Frames decoded during ``seconds`` of wall time, with when each arrived."""
    got: list[tuple[float, av.VideoFrame]] = []

    async def collect() -> None:
        async for frame in player.frames():
            got.append((time.monotonic(), frame))

    task = asyncio.ensure_future(collect())
    await asyncio.wait({task}, timeout=seconds)
    task.cancel()
    return got


def rate(frames: list[tuple[float, av.VideoFrame]]) -> float:
    """Recording seconds per wall second, from the burned-in clocks."""
    (t0, f0), (t1, f1) = frames[0], frames[-1]
    return (stamp_of(f1).time_ms - stamp_of(f0).time_ms) / 1000 / (t1 - t0)


async def test_lists_of_days_and_items_with_paging(
    world: World, recorded: Recorded, tmp_path: Path
) -> None:
    async with camera(world, card_copy(recorded, tmp_path)) as lv:
        month = time.strftime("%Y-%m", time.gmtime(recorded.start / 1000))
        days = await get_record_dates(world.device.tid, month, sdk=lv.sdk, tz_offset_minutes=0)
        assert days == [time.gmtime(recorded.start / 1000).tm_mday]
        found = await items(lv, world, recorded)
        assert len(found) == 10
        assert found[0].start_time == recorded.start
        assert found[-1].end_time == pytest.approx(recorded.end, abs=100)
        # Consecutive files share their boundary: no hole, no overlap.
        assert all(a.end_time == b.start_time for a, b in itertools.pairwise(found))
        assert {i.type for i in found} == {"continuous"} and all(i.size > 0 for i in found)
        page = await get_playback_list(
            world.device.tid, recorded.start, recorded.end, page=2, per_page=4, sdk=lv.sdk
        )
        assert (page.total, page.pages, page.page) == (10, 3, 2)
        assert page.items == found[8:]
        with pytest.raises(IVError) as empty:
            await get_playback_list(world.device.tid, 1000, 2000, sdk=lv.sdk)
        assert empty.value.code == ErrorCode.IVPlayerError_PlaybackListEmpty
        other = await get_record_dates(world.device.tid, "2001-01", sdk=lv.sdk)
        assert other == []


async def test_seek_lands_on_the_keyframe_at_or_before_the_time(
    world: World, recorded: Recorded, tmp_path: Path
) -> None:
    async with camera(world, card_copy(recorded, tmp_path)) as lv:
        found = await items(lv, world, recorded)
        at = found[3].start_time + 3700
        player = PlaybackPlayer(world.device.tid, found[3], seek_to_time=at, sdk=lv.sdk)
        await player.play()
        first = (await take_frames(player, 1))[0]
        shown = stamp_of(first).time_ms
        assert at - GOP_MS <= shown <= at
        assert player.position_of(first) == shown  # the position is the picture's time
        assert player.duration == found[3].duration == 10_000
        assert player.status is PlayerStatus.PLAYING
        # Snapshots and recordings as in the live players.
        picture = await player.snapshot(tmp_path / "shot.png")
        assert picture.startswith(b"\x89PNG")
        await player.start_recording(tmp_path / "clip.mp4")
        # A file starts at a keyframe: a recording's come every 2 s (GOP_MS), and the
        # device cannot make one on request, so 20 frames (1.3 s) may hold none.
        async with asyncio.timeout(10):
            while player.av_recorder.video_packets == 0:
                await take_frames(player, 1)
        await take_frames(player, 20)
        clip = await player.stop_recording()
        assert clip is not None
        kinds = {s["codec_type"]: s for s in ffprobe(clip)["streams"]}
        assert kinds["video"]["codec_name"] == "h264" and kinds["audio"]["codec_name"] == "opus"
        # Into another file, forwards and backwards.
        seen: list[int] = []
        player.delegate = type(
            "D", (), {"player_did_update_position": lambda _s, _p, at: seen.append(at)}
        )()
        for item, offset in ((found[7], 5300), (found[1], 900)):
            target = item.start_time + offset
            seen.clear()
            landed = await player.seek(target, item)
            assert target - GOP_MS <= landed <= target
            async with asyncio.timeout(10):  # what was in flight, then it and what follows
                while landed not in seen or len(seen) - seen.index(landed) < 3:
                    await take_frames(player, 1)
            after = seen[seen.index(landed) :]
            assert after == sorted(after)
            assert player.playback_item == item
            assert item.start_time <= player.position <= item.end_time
        with pytest.raises(IVError) as nothing:
            await player.seek(recorded.end + 60_000)
        assert nothing.value.code == ErrorCode.IVTermErr_msg_find_record_file_fail
        await player.stop()


@pytest.mark.parametrize("speed", [8.0, 32.0])
async def test_fast_playback_advances_the_clock_by_its_factor(
    world: World, recorded: Recorded, tmp_path: Path, speed: float
) -> None:
    async with camera(world, card_copy(recorded, tmp_path)) as lv:
        player = PlaybackPlayer(
            world.device.tid, None, recorded.start + 1000, sdk=lv.sdk, speed=speed
        )
        await player.play()
        await player.wait_playing()
        frames = await timed_frames(player, 1.8)
        await player.stop()
    assert getattr(player.audio_render, "samples", None) == 0  # muted above 2x
    assert len(frames) >= 5
    assert rate(frames) == pytest.approx(speed, rel=0.15)
    # Keyframes only, and no more than 5 a second: the bandwidth stays flat.
    assert all(f.key_frame for _, f in frames)
    assert len(frames) / (frames[-1][0] - frames[0][0]) <= 6


async def test_speed_change_pause_and_resume(
    world: World, recorded: Recorded, tmp_path: Path
) -> None:
    async with camera(world, card_copy(recorded, tmp_path)) as lv:
        player = PlaybackPlayer(world.device.tid, None, recorded.start + 20_000, sdk=lv.sdk)
        with pytest.raises(IVError) as early:
            await player.pause()
        assert early.value.code == ErrorCode.IVPlayerError_OperationNotAllowedNow
        await player.play()
        at_1x = await timed_frames(player, 1.2)
        assert rate(at_1x) == pytest.approx(1.0, rel=0.15)
        # Normal speed carries the recorded audio (a 440 Hz tone).
        assert getattr(player.audio_render, "samples", 0) > 0
        await player.set_speed(2.0)
        heard = player.audio_render.samples  # type: ignore[attr-defined]
        at_2x = await timed_frames(player, 1.2)
        assert rate(at_2x[3:]) == pytest.approx(2.0, rel=0.15)
        # At 2x the tone is still heard in real time, at its own pitch (time-stretched).
        heard = player.audio_render.samples - heard  # type: ignore[attr-defined]
        assert 0.5 * 48_000 < heard < 1.6 * 48_000
        recent = player.audio_render.recent[-9600:]  # type: ignore[attr-defined]
        assert dominant_frequency(recent) == pytest.approx(440, abs=10)
        last_sent = await player.pause()
        assert player.status is PlayerStatus.PAUSED and player.paused
        with pytest.raises(IVError) as twice:
            await player.pause()
        assert twice.value.code == ErrorCode.IVPlayerError_OperationNotAllowedNow
        async with asyncio.timeout(5):  # what was in flight arrives, up to the last sent
            if player.position != last_sent:
                async for frame in player.frames():
                    if player.position_of(frame) == last_sent:
                        break
        held, count = player.last_frame, player.frames_decoded
        assert held is not None
        # A second of pause by the camera's own clock (15 frames of its live stream):
        # nothing new is shown.
        live_stream = lv.media.channels["1"].video.stream("low")
        ticks = live_stream.add_viewer()
        try:
            for _ in range(15):
                assert await ticks.get() is not None
        finally:
            live_stream.remove_viewer(ticks)
        assert player.frames_decoded == count and player.last_frame is held
        await player.resume()
        assert player.status is PlayerStatus.PLAYING
        following = (await take_frames(player, 1))[0]
        assert stamp_of(following).count == stamp_of(held).count + 1
        with pytest.raises(IVError) as not_paused:
            await player.resume()
        assert not_paused.value.code == ErrorCode.IVPlayerError_OperationNotAllowedNow
        await player.stop()


async def test_playing_across_files_has_no_gap_and_the_end_is_told(
    world: World, recorded: Recorded, tmp_path: Path
) -> None:
    async with camera(world, card_copy(recorded, tmp_path)) as lv:
        found = await items(lv, world, recorded)
        boundary = found[1].end_time
        ended = asyncio.Event()
        last: list[int] = []

        def reached(_player: PlaybackPlayer, at: int) -> None:
            last.append(at)
            ended.set()

        player = PlaybackPlayer(world.device.tid, found[1], boundary - 1500, sdk=lv.sdk, speed=2)
        player.delegate = type(
            "D", (), {"player_did_reach_end": lambda _s, p, at: reached(p, at)}
        )()
        await player.play()
        frames = await _until_stamp(player, boundary + 1500)
        counts = [stamp_of(f).count for f in frames]
        assert counts == list(range(counts[0], counts[0] + len(counts)))  # every frame, once
        assert stamp_of(frames[0]).time_ms < boundary < stamp_of(frames[-1]).time_ms
        assert not player.reached_end
        # The last file, at 32x: the device says the recordings end.
        await player.seek(found[-1].start_time, found[-1])
        await player.set_speed(32)
        async with asyncio.timeout(10):
            await ended.wait()
        assert player.reached_end
        # The last keyframe is shown (the end is told with its time, which may come first).
        assert found[-1].end_time - GOP_MS <= last[0] < found[-1].end_time
        async with asyncio.timeout(5):
            if player.position != last[0]:
                async for frame in player.frames():
                    if player.position_of(frame) == last[0]:
                        break
        await player.stop()


async def _until_stamp(player: PlaybackPlayer, until_ms: int) -> list[av.VideoFrame]:
    frames: list[av.VideoFrame] = []
    async with asyncio.timeout(15):
        async for frame in player.frames():
            frames.append(frame)
            if stamp_of(frame).time_ms >= until_ms:
                return frames
    raise AssertionError("the stream ended")


async def test_download_paused_and_broken_then_resumed_is_identical(
    world: World, recorded: Recorded, tmp_path: Path
) -> None:
    card = card_copy(recorded, tmp_path)
    async with camera(world, card) as lv:
        found = await items(lv, world, recorded)
        item = found[2]
        original = card.path(card.file(item.start_time))  # type: ignore[arg-type]
        digest = hashlib.sha256(original.read_bytes()).hexdigest()
        rng = random.Random(12)

        # Paused at a random offset, resumed on the same connection.
        downloader = FileDownloader(world.device.tid, sdk=lv.sdk)
        got = bytearray()
        stop_at = rng.randrange(1, original.stat().st_size)
        sizes: list[int] = []

        def take(data: bytes) -> None:
            got.extend(data)
            if len(got) >= stop_at:
                downloader.pause()

        first = await downloader.download(item.start_time, 0, on_ready=sizes.append, on_data=take)
        assert sizes == [original.stat().st_size]
        if first.paused:
            assert first.received == len(got) < first.size
        second = await downloader.download(item.start_time, len(got), on_data=got.extend)
        assert second.complete and not second.paused
        assert hashlib.sha256(bytes(got)).hexdigest() == digest
        await downloader.stop()

        # Broken (the connection dropped) at a random offset, resumed by a new downloader
        # from the partial file's size.
        out = tmp_path / "clip.ts"
        broken = FileDownloader(world.device.tid, sdk=lv.sdk)
        cut = rng.randrange(1, original.stat().st_size)
        stopping: list[asyncio.Future[None]] = []

        def progress(have: int, _size: int) -> None:
            if have >= cut and not stopping:
                stopping.append(asyncio.ensure_future(broken.stop()))

        with pytest.raises(IVError):
            await broken.download_to(out, item.start_time, progress=progress)
        await stopping[0]
        partial = out.stat().st_size
        assert 0 < partial < original.stat().st_size
        again = FileDownloader(world.device.tid, sdk=lv.sdk)
        result = await again.download_to(out, item.start_time)
        await again.stop()
        assert result.offset == partial and result.complete
        assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
        streams = {s["codec_name"] for s in ffprobe(out)["streams"]}
        assert {"h264", "opus"} <= streams


async def test_download_errors_busy_offset_unknown_and_idle_hangup(
    world: World, recorded: Recorded, tmp_path: Path
) -> None:
    card = card_copy(recorded, tmp_path)
    async with camera(world, card, download_rate=1_000_000, download_idle_timeout=0.5) as lv:
        found = await items(lv, world, recorded)
        a = FileDownloader(world.device.tid, sdk=lv.sdk)
        b = FileDownloader(world.device.tid, sdk=lv.sdk)
        await b.connect()
        second: list[asyncio.Future[Any]] = []

        def ready(_size: int) -> None:  # a is sending now: b asks for another file
            second.append(asyncio.ensure_future(b.download(found[1].start_time)))

        first = await a.download(found[0].start_time, on_ready=ready)
        assert first.complete
        with pytest.raises(IVError) as busy:
            await second[0]
        assert busy.value.code == ErrorCode.IVDownloadError_DownloaderBusy
        # Once a is done, b may download.
        assert (await b.download(found[1].start_time)).complete
        await b.stop()
        with pytest.raises(IVError) as beyond:
            await a.download(found[0].start_time, found[0].size + 1)
        assert beyond.value.code == ErrorCode.IVDownloadError_IncorrectOffset
        with pytest.raises(IVError) as unknown:
            await a.download(found[0].start_time + 1)
        assert unknown.value.code == ErrorCode.IVDownloadError_FileNotFound
        # Downloading into a file: a refused download leaves no empty file behind.
        with pytest.raises(IVError) as refused:
            await a.download_to(tmp_path / "unknown.ts", found[0].start_time + 1)
        assert refused.value.code == ErrorCode.IVDownloadError_FileNotFound
        assert not (tmp_path / "unknown.ts").exists()
        # No request for 0.5 s (10 s by default) after the last: the device hangs up.
        asked = time.monotonic()
        error = await a.wait_ended()
        assert (
            error is not None and error.code == ErrorCode.IVTermErr_msg_wait_option_timeout_hangup
        )
        assert time.monotonic() - asked >= 0.3
        # The same after a pause: the device keeps the place for a resume, then hangs up.
        c = FileDownloader(world.device.tid, sdk=lv.sdk)
        paused = await c.download(found[2].start_time, on_ready=lambda _size: c.pause())
        assert paused.paused and paused.received < paused.size
        asked = time.monotonic()
        error = await c.wait_ended()
        assert (
            error is not None and error.code == ErrorCode.IVTermErr_msg_wait_option_timeout_hangup
        )
        assert time.monotonic() - asked >= 0.3


async def test_strangers_and_bad_requests_are_refused(
    world: World, recorded: Recorded, tmp_path: Path
) -> None:
    async with camera(world, card_copy(recorded, tmp_path), max_viewers=1) as lv:
        tid = world.device.tid
        async with app_sdk(world.cloud.url, world.stranger) as stranger:
            for attempt in (
                get_playback_list(tid, 0, sdk=stranger),
                get_record_dates(tid, sdk=stranger),
                PlaybackPlayer(tid, None, recorded.start, sdk=stranger).play(),
                FileDownloader(tid, sdk=stranger).download(recorded.start),
            ):
                with pytest.raises(IVError) as refused:
                    await attempt
                assert refused.value.code == ErrorCode.IVASrvErr_dst_error_relation, attempt
        with pytest.raises(IVError) as fast:
            PlaybackPlayer(tid, None, recorded.start, sdk=lv.sdk, speed=64)
        assert fast.value.code == ErrorCode.IVPlayerError_InvalidParameter
        # The device checks too.
        with pytest.raises(IVError) as raw:
            await lv.sdk.request(
                "media.offer",
                {
                    "tid": tid,
                    "sdp": "v=0\r\n",
                    "kind": "playback",
                    "at": recorded.start,
                    "speed": 64,
                },
            )
        assert raw.value.code == ErrorCode.IVPlayerError_InvalidParameter
        # Playback takes a viewing channel.
        monitor = MonitorPlayer(tid, sdk=lv.sdk)
        await monitor.play()
        with pytest.raises(IVError) as full:
            await PlaybackPlayer(tid, None, recorded.start, sdk=lv.sdk).play()
        assert full.value.code == ErrorCode.IVTermErr_msg_calling_all_chn_busy
        await monitor.stop()


async def test_a_removed_card_gives_seed_codes_not_a_crash(
    world: World, recorded: Recorded, tmp_path: Path
) -> None:
    card = card_copy(recorded, tmp_path)
    async with camera(world, card, card_recording=True) as lv:
        tid = world.device.tid
        card.root.rename(tmp_path / "pulled")  # the card is pulled: its directory is gone
        with pytest.raises(IVError) as listing:
            await get_playback_list(tid, 0, sdk=lv.sdk)
        assert listing.value.code == ErrorCode.IVTermErr_msg_find_record_file_fail
        with pytest.raises(IVError) as playing:
            await PlaybackPlayer(tid, None, recorded.start, sdk=lv.sdk).play()
        assert playing.value.code == ErrorCode.IVTermErr_msg_find_record_file_fail
        downloader = FileDownloader(tid, sdk=lv.sdk)
        with pytest.raises(IVError) as download:
            await downloader.download(recorded.start)
        assert download.value.code == ErrorCode.IVDownloadError_FileNotFound
        await downloader.stop()
        # The recorder noticed and waits; the card back, it records again.
        recorder = lv.media.card_recorder
        assert recorder is not None
        await recorder.wait_for(lambda: not recorder.card_present, timeout=10)
        files = recorder.files
        card.root.mkdir()
        await recorder.wait_for(lambda: recorder.card_present and recorder.files > files)
        assert (card.root / "index.db").is_file()  # a new card: index and files anew
        # Live video goes on throughout.
        monitor = MonitorPlayer(tid, sdk=lv.sdk)
        await monitor.play()
        await take_frames(monitor, 2)
        await monitor.stop()


async def test_malformed_lists_and_a_device_without_download(world: World) -> None:
    """What a device of another firmware answers: lists the SDK cannot read, an offer it
    does not understand."""

    def old_offer(_data: dict[str, Any]) -> dict[str, Any]:
        raise IVError.of(ErrorCode.IVTermErr_msg_user_cmd_param_error, "unknown kind")

    def setup(dc: Any) -> None:
        dc.add_op("card.list", lambda _d: {"version": 1, "items": "nope", "total": 1})
        dc.add_op("card.days", lambda _d: {"version": 2, "days": [1]})
        dc.add_op("media.offer", old_offer)

    async with (
        device_client(world.cloud.url, world.device, setup) as _dc,
        app_sdk(world.cloud.url, world.owner) as sdk,
    ):
        tid = world.device.tid
        with pytest.raises(IVError) as malformed:
            await get_playback_list(tid, 0, sdk=sdk)
        assert malformed.value.code == ErrorCode.IVPlayerError_PlaybackDataErr
        with pytest.raises(IVError) as version:
            await get_record_dates(tid, sdk=sdk)
        assert version.value.code == ErrorCode.IVPlayerError_PlaybackListVerErr
        with pytest.raises(IVError) as old:
            await FileDownloader(tid, sdk=sdk).download(1)
        assert old.value.code == ErrorCode.IVDownloadError_DevNoResponse


async def test_the_blocking_face_lists_and_downloads(
    world: World, recorded: Recorded, tmp_path: Path
) -> None:
    from iotvideo.app.sync import SyncIoTVideo

    out = tmp_path / "sync.ts"
    card = card_copy(recorded, tmp_path)

    def script() -> tuple[list[int], Any, Any]:  # a plain script: no asyncio in sight
        with SyncIoTVideo(world.cloud.url) as sdk:
            sdk.register(world.owner.access_id, world.owner.token)
            month = time.strftime("%Y-%m", time.localtime(recorded.start / 1000))
            days = sdk.get_record_dates(world.device.tid, month)
            page = sdk.get_playback_list(world.device.tid, recorded.start, recorded.end)
            result = sdk.download_playback_file(
                world.device.tid, page.items[0].start_time, str(out)
            )
            return days, page, result

    async with camera(world, card):
        days, page, result = await asyncio.to_thread(script)
    assert time.localtime(recorded.start / 1000).tm_mday in days
    assert page.total == 10 and result.complete
    assert out.read_bytes() == (card.root / f"{page.items[0].start_time}.ts").read_bytes()


async def test_the_seed_callback_form_of_a_download(
    world: World, recorded: Recorded, tmp_path: Path
) -> None:
    card = card_copy(recorded, tmp_path)
    async with camera(world, card) as lv:
        found = await items(lv, world, recorded)
        original = (card.root / f"{found[4].start_time}.ts").read_bytes()
        downloader = FileDownloader(world.device.tid, sdk=lv.sdk)
        calls: list[str] = []
        got = bytearray()
        finished = asyncio.Event()

        def ended(what: str) -> None:
            calls.append(what)
            finished.set()

        downloader.download_playback_file(
            found[4].start_time,
            0,
            ready=lambda size: calls.append(f"ready {size}"),
            progress=got.extend,
            paused=lambda: ended("paused"),
            success=lambda: ended("success"),
            failure=lambda error: ended(f"failure {error.code}"),
        )
        async with asyncio.timeout(30):
            await finished.wait()
        assert calls == [f"ready {len(original)}", "success"] and bytes(got) == original
        # A failure reaches the failure callback with the seed's code.
        finished.clear()
        downloader.download_playback_file(
            found[4].start_time,
            len(original) + 1,
            calls.append,
            got.extend,
            lambda: ended("paused"),
            lambda: ended("success"),
            lambda error: ended(f"failure {error.code}"),
        )
        async with asyncio.timeout(30):
            await finished.wait()
        assert calls[-1] == f"failure {int(ErrorCode.IVDownloadError_IncorrectOffset)}"
        await downloader.stop()


async def test_each_channel_of_an_nvr_has_its_own_card(world: World, tmp_path: Path) -> None:
    """Two channels, a card each with a different past: the list, playback and download
    of each ``sourceId`` are its own card's; a source without a card is refused."""
    now = int(time.time()) * 1000
    starts = {"1": now - 7200_000, "2": now - 3600_000}
    cards = {}
    for source, start in starts.items():
        card = Card(tmp_path / f"card{source}", file_seconds=10)
        card.mount()
        await asyncio.to_thread(fill_test_recording, card, start, 20)
        cards[source] = card
    sources = {"1": ("testsrc:", "none"), "2": ("testsrc:", "none"), "3": ("testsrc:", "none")}
    try:
        async with live(world, sources=sources, cards=cards, card_recording=False) as lv:
            tid = world.device.tid
            for source, start in starts.items():
                page = await get_playback_list(tid, now - 10_800_000, now, sdk=lv.sdk,
                                               source_id=source)  # fmt: skip
                assert [i.start_time for i in page.items] == [start, start + 10_000]
                player = PlaybackPlayer(tid, page.items[0], sdk=lv.sdk, source_id=source)
                await player.play()
                shown = stamp_of((await take_frames(player, 1))[0]).time_ms
                assert start <= shown < start + 2_000, (source, shown)
                await player.stop()
                got = bytearray()
                downloader = FileDownloader(tid, sdk=lv.sdk, source_id=source)
                await downloader.download(page.items[1].start_time, on_data=got.extend)
                await downloader.stop()
                card = cards[source]
                assert bytes(got) == card.path(card.file(start + 10_000)).read_bytes()
            with pytest.raises(IVError) as none:
                await get_playback_list(tid, 0, now, sdk=lv.sdk, source_id=3)
            assert none.value.code == ErrorCode.IVPlayerError_InvalidParameter
    finally:
        for card in cards.values():
            card.close()
