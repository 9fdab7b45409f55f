"""MonitorPlayer against a simulated camera, through the cloud, over loopback WebRTC."""

from __future__ import annotations

import asyncio
import itertools
import threading
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from iotvideo.app.modules import ToneCapture, VideoDecoder
from iotvideo.app.player import MonitorPlayer, PlayerStatus
from iotvideo.media.audio import Tone, dominant_frequency
from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.world import World
from tests.live.helpers import live, stamp_of, take_frames
from tests.support import ffprobe


async def test_frames_are_decoded_and_the_burned_in_clock_advances(world: World) -> None:
    async with live(world) as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        statuses: list[PlayerStatus] = []
        player.delegate = type(
            "D", (), {"player_did_update_status": lambda _s, _p, status: statuses.append(status)}
        )()
        await player.play()
        frames = await take_frames(player, 10)
        assert player.status is PlayerStatus.PLAYING
        assert {(f.width, f.height) for f in frames} == {(320, 180)}  # "low"
        stamps = [stamp_of(f) for f in frames]
        assert all(b.count > a.count for a, b in itertools.pairwise(stamps))
        assert stamps[-1].time_ms > stamps[0].time_ms
        # The trace has every stage, in order.
        stages = [player.trace[s] for s in ("signaling", "ice", "dtls", "first_frame")]
        assert stages == sorted(stages)
        assert player.trace["first_keyframe"] <= player.trace["first_frame"]
        await player.stop()
        assert player.status is PlayerStatus.STOPPED
    # The delegate saw each state, in order (LOADING only if DTLS beat the first picture).
    assert [s for s in statuses if s is not PlayerStatus.LOADING] == [
        PlayerStatus.CONNECTING,
        PlayerStatus.PLAYING,
        PlayerStatus.STOPPED,
    ]


async def test_resolution_switch_changes_the_size_without_reconnecting(world: World) -> None:
    async with live(world) as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        sizes: list[tuple[int, int]] = []
        player.delegate = type(
            "D", (), {"player_did_change_size": lambda _s, _p, w, h: sizes.append((w, h))}
        )()
        await player.play()
        await take_frames(player, 3)
        connection = player._pc
        assert await player.switch_definition("mid") == (640, 360)
        frames = await take_frames(player, 5, until=lambda f: f.width == 640)
        assert {(f.width, f.height) for f in frames} == {(640, 360)}
        assert player._pc is connection and player.connected
        assert sizes == [(640, 360)]
        # The clock goes on across the switch.
        assert stamp_of(frames[-1]).count > stamp_of(frames[0]).count
        with pytest.raises(IVError) as bad:
            await player.switch_definition("ultra")
        assert bad.value.code == ErrorCode.IVPlayerError_InvalidParameter
        await player.stop()


async def test_talk_tone_arrives_at_the_device_sink(world: World) -> None:
    received: list[np.ndarray] = []
    enough = asyncio.Event()

    def sink(samples: np.ndarray) -> None:
        received.append(samples)
        if sum(s.size for s in received) >= 48_000:  # one second
            enough.set()

    async with live(world, talk_sink=sink) as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        await player.play()
        await player.start_talking(ToneCapture(700))
        assert player.talking
        async with asyncio.timeout(10):
            await enough.wait()
        await player.stop_talking()
        pcm = np.concatenate(received)
        assert abs(dominant_frequency(pcm[-24_000:]) - 700) <= 10
        # And the camera's own tone reached the app's audio renderer.
        assert abs(dominant_frequency(player.audio_render.recent) - 440) <= 10
        await player.stop()


async def test_recording_is_a_valid_mp4_of_the_asked_length(world: World, tmp_path: Path) -> None:
    async with live(world) as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        await player.play()
        await take_frames(player, 1)
        path = tmp_path / "clip.mp4"
        await player.start_recording(path)
        with pytest.raises(IVError) as again:
            await player.start_recording(tmp_path / "other.mp4")
        assert again.value.code == ErrorCode.IVPlayerError_RecorderIsRunning
        # Three seconds of stream, counted by its own clock (15 fps).
        frames = await take_frames(player, 46)
        assert stamp_of(frames[-1]).time_ms - stamp_of(frames[0]).time_ms >= 2900
        assert await player.stop_recording() == path
        await player.stop()
    info = ffprobe(path)
    codecs = {s["codec_type"]: s["codec_name"] for s in info["streams"]}
    assert codecs == {"video": "h264", "audio": "opus"}
    assert abs(float(info["format"]["duration"]) - 3.0) <= 0.3
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (320, 180)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
async def test_snapshot_is_an_image_of_the_stream_size(
    world: World, tmp_path: Path, suffix: str
) -> None:
    async with live(world) as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk, definition="mid")
        with pytest.raises(IVError) as early:
            await player.snapshot()
        assert early.value.code == ErrorCode.IVPlayerError_OperationNotAllowedNow
        await player.play()
        await player.wait_playing()
        path = tmp_path / f"snap{suffix}"
        data = await player.snapshot(path)
        await player.stop()
    assert path.read_bytes() == data
    stream = ffprobe(path)["streams"][0]
    assert stream["codec_name"] == ("mjpeg" if suffix == ".jpg" else "png")
    assert (stream["width"], stream["height"]) == (640, 360)


async def test_a_snapshot_right_after_play_waits_for_the_first_picture(
    world: World, tmp_path: Path
) -> None:
    """``play(); snapshot()`` as a script writes it: play() returns once connected, before
    any picture; the snapshot waits for the first one instead of failing."""
    gate = threading.Event()

    class HeldDecoder(VideoDecoder):
        """Holds the first picture back until the snapshot has been asked for."""

        def decode(self, data: bytes, pts: int) -> list[av.VideoFrame]:
            gate.wait(10)
            return super().decode(data, pts)

    async with live(world) as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        player.video_decoder = HeldDecoder()
        await player.play()
        shot = player.snapshot(tmp_path / "first.jpg")
        await asyncio.sleep(0)  # the snapshot has started, with no picture yet
        assert player.last_frame is None and not shot.done()
        gate.set()
        data = await shot
        await player.stop()
    assert data.startswith(b"\xff\xd8")
    assert (tmp_path / "first.jpg").read_bytes() == data


async def test_a_stranger_cannot_watch(world: World) -> None:
    async with live(world, user=world.stranger) as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        with pytest.raises(IVError) as refused:
            await player.play()
        assert refused.value.code == ErrorCode.IVASrvErr_dst_error_relation
        assert player.status is PlayerStatus.FAILED
        assert not lv.sdk.connections


async def test_g711_audio_plays_and_records_as_aac(world: World, tmp_path: Path) -> None:
    async with live(world, audio="tone:1000?codec=pcmu") as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        await player.play()
        assert player.answer["audio"]["codec"] == "pcmu"
        await take_frames(player, 1)
        path = tmp_path / "g711.mp4"
        await player.start_recording(path)
        await take_frames(player, 30)
        await player.stop_recording()
        assert abs(dominant_frequency(player.audio_render.recent) - 1000) <= 10
        # Muted: nothing more reaches the audio renderer.
        player.mute = True
        heard = player.audio_render.samples
        await take_frames(player, 10)
        assert player.audio_render.samples <= heard + 960  # at most what was in flight
        await player.stop()
    codecs = {s["codec_type"]: s["codec_name"] for s in ffprobe(path)["streams"]}
    assert codecs == {"video": "h264", "audio": "aac"}


async def test_audio_from_a_file_is_looped_to_the_app(world: World, tmp_path: Path) -> None:
    speech = tmp_path / "speech.wav"
    with wave.open(str(speech), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(Tone(500, rate=16_000).next_samples(4_000).tobytes())  # 0.25 s
    async with live(world, audio=f"file:{speech}") as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        await player.play()
        await take_frames(player, 20)  # > 1 s: the quarter second looped
        await player.stop()
    assert player.audio_render.samples >= 48_000
    assert abs(dominant_frequency(player.audio_render.recent) - 500) <= 10


async def test_each_nvr_channel_is_its_own_source(world: World) -> None:
    sources = {"1": ("testsrc:", "none"), "2": ("testsrc:?size=400x224", "tone:300")}
    async with live(world, sources=sources) as lv:
        first = MonitorPlayer(world.device.tid, sdk=lv.sdk, source_id=1)
        second = MonitorPlayer(world.device.tid, sdk=lv.sdk, source_id="2")
        await first.play()
        await second.play()
        (a,) = await take_frames(first, 1)
        (b,) = await take_frames(second, 1)
        assert (a.width, a.height) == (320, 180)
        assert (b.width, b.height) == (400, 224)
        assert "audio" not in first.answer and second.answer["audio"]["codec"] == "opus"
        await first.stop()
        await second.stop()


async def test_a_recorder_that_falls_behind_still_finishes_a_valid_file(
    world: World, tmp_path: Path
) -> None:
    """The recorder stalls until its queue is full: frames are skipped to a keyframe and
    counted, and stop_recording still runs after what was queued (once it never did)."""
    import threading

    from iotvideo.media.recorder import MP4Recorder

    gate = threading.Event()

    class Stalling(MP4Recorder):
        def write_video(self, *args: Any) -> None:
            gate.wait(30)
            super().write_video(*args)

    async with live(world) as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        player.av_recorder = Stalling()
        await player.play()
        await take_frames(player, 1)
        path = tmp_path / "behind.mp4"
        await player.start_recording(path)
        while player.frames_not_recorded == 0:
            await take_frames(player, 1)  # until the recorder's queue is full
        stopping = asyncio.ensure_future(player.stop_recording())
        await take_frames(player, 2)
        assert not stopping.done(), "it waits for what was queued"
        gate.set()
        async with asyncio.timeout(30):
            assert await stopping == path
        await player.stop()
    info = ffprobe(path)
    assert {s["codec_type"] for s in info["streams"]} >= {"video"}
    assert float(info["format"]["duration"]) > 1
