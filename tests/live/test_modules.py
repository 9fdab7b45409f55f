"""The players' replaceable modules (the seed's 高级功能): a custom module of each kind,
plugged in before play(), is called; the built-ins have the seed's settable properties."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from iotvideo.app.modules import (
    AudioCapture,
    AudioDecoder,
    AudioEncoder,
    AudioRender,
    TestCamera,
    VideoDecoder,
    VideoEncoder,
)
from iotvideo.app.player import LivePlayer, MonitorPlayer
from iotvideo.media.audio import AudioEncoder as OpusEncoder
from iotvideo.media.audio import Tone
from iotvideo.media.recorder import MP4Recorder
from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.world import World
from tests.live.helpers import live, take_frames


class Counting:
    def __init__(self) -> None:
        self.calls = 0


class MyVideoDecoder(Counting):
    def __init__(self) -> None:
        super().__init__()
        self.inner = VideoDecoder()

    def decode(self, data: bytes, pts: int) -> list[av.VideoFrame]:
        self.calls += 1
        return self.inner.decode(data, pts)


class MyAudioDecoder(Counting):
    def __init__(self) -> None:
        super().__init__()
        self.inner = AudioDecoder()

    def decode(self, mime: str, data: bytes) -> np.ndarray:
        self.calls += 1
        return self.inner.decode(mime, data)


class MyVideoRender(Counting):
    def render(self, frame: av.VideoFrame) -> None:
        self.calls += 1


class MyAudioRender(Counting):
    def render(self, samples: np.ndarray) -> None:
        self.calls += 1


class MyRecorder(MP4Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.videos = 0

    def write_video(self, data: bytes, pts: int, keyframe: bool, at: float) -> None:
        self.videos += 1
        super().write_video(data, pts, keyframe, at)


class MyCapture(Counting):
    def chunks(self, rate: int, count: int) -> Iterator[np.ndarray]:
        tone = Tone(440, rate=rate)
        while True:
            self.calls += 1
            yield tone.next_samples(count)


class MyOpus(Counting):
    """An encoder written to the protocol alone: codec, rate, encode."""

    codec = "opus"
    rate = 48_000

    def __init__(self) -> None:
        super().__init__()
        self.inner = OpusEncoder("opus")

    def encode(self, samples: np.ndarray) -> list[av.Packet[Any]]:
        self.calls += 1
        return self.inner.encode(samples)


class MyCamera(Counting):
    definition = "mid"

    def frames(self, width: int, height: int) -> Iterator[np.ndarray]:
        while True:
            self.calls += 1
            yield np.full((height, width, 3), 90, dtype=np.uint8)


class MyVideoEncoder(VideoEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def encode(self, image: np.ndarray, pts: int) -> list[av.Packet[Any]]:
        self.calls += 1
        return super().encode(image, pts)


async def test_a_custom_module_of_each_kind_is_called(world: World, tmp_path: Path) -> None:
    heard: list[np.ndarray] = []
    seen: list[av.VideoFrame] = []
    enough = asyncio.Event()

    def check() -> None:
        if sum(s.size for s in heard) >= 9600 and len(seen) >= 3:
            enough.set()

    def talk(samples: np.ndarray) -> None:
        heard.append(samples)
        check()

    def video(_session: Any, frame: av.VideoFrame) -> None:
        seen.append(frame)
        check()

    media = {"talk_sink": talk, "on_video": video}
    async with live(world, **media) as lv:
        player = LivePlayer(world.device.tid, sdk=lv.sdk)
        modules = {
            "video_decoder": MyVideoDecoder(),
            "audio_decoder": MyAudioDecoder(),
            "video_render": MyVideoRender(),
            "audio_render": MyAudioRender(),
            "av_recorder": MyRecorder(),
            "audio_capture": MyCapture(),
            "audio_encoder": MyOpus(),
            "video_capture": MyCamera(),
            "video_encoder": MyVideoEncoder(),
        }
        for name, module in modules.items():
            setattr(player, name, module)
        assert player.capture_definition == "mid"  # read from the capture module
        await player.play()
        await take_frames(player, 5)
        await player.start_recording(tmp_path / "clip.mp4")
        await player.start_talking()
        await player.open_camera()
        async with asyncio.timeout(10):
            await enough.wait()
        assert await player.stop_recording() is not None
        await player.stop()
    for name, module in modules.items():
        calls = getattr(module, "calls", None) or getattr(module, "videos", 0)
        assert calls > 0, f"{name} was never called"
    assert {(f.width, f.height) for f in seen} == {(640, 360)}  # the capture's definition


async def test_built_in_modules_have_settable_properties(world: World) -> None:
    async with live(world, audio="tone:440?codec=pcmu", talk_sink=lambda _s: None) as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        assert isinstance(player.audio_encoder, AudioEncoder)
        player.audio_encoder.audio_type = "opus"  # the seed's audioType
        assert player.audio_encoder.rate == 48_000
        with pytest.raises(ValueError, match="opus, pcmu or pcma"):
            player.audio_encoder.audio_type = "amr"
        capture = AudioCapture()
        assert capture.sample_rate == 8_000  # the seed's default
        capture.sample_rate = 16_000
        assert capture.sample_rate == 16_000
        render = player.audio_render
        assert isinstance(render, AudioRender)
        sound = asyncio.Event()
        render.callbacks.append(lambda _samples: sound.set())
        await player.play()
        await player.wait_playing()
        await player.start_talking(MyCapture())
        # The device talks G.711 here: the built-in encoder followed it.
        assert player.audio_encoder.codec == "pcmu" and player.audio_encoder.rate == 8_000
        await player.stop_talking()
        # A custom encoder of another codec cannot talk to it.
        player.audio_encoder = MyOpus()
        with pytest.raises(IVError) as refused:
            await player.start_talking(MyCapture())
        assert refused.value.code == ErrorCode.IVPlayerError_EncoderNotAvailableNow
        async with asyncio.timeout(10):
            await sound.wait()
        # No sound card here: the built-in renderer keeps the samples and plays nothing.
        assert render.playing is False and render.recent.size > 0
        await player.stop()
    camera = TestCamera()
    assert camera.definition == "low"
    # A module that does not implement its protocol is refused before anything starts.
    broken = MonitorPlayer(world.device.tid, sdk=lv.sdk)
    broken.video_render = object()  # type: ignore[assignment]
    with pytest.raises(IVError) as wrong:
        await broken.play()
    assert wrong.value.code == ErrorCode.IVPlayerError_NoRespondsToSelector
    assert "video_render" in wrong.value.message
    live_player = LivePlayer(world.device.tid, sdk=lv.sdk)
    live_player.capture_definition = "high"
    assert all(getattr(c, "definition", "") == "high" for c in live_player.cameras)
    with pytest.raises(IVError):
        live_player.capture_definition = "ultra"
