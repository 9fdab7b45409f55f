"""`iotvideo app play|snapshot|record|talk` against `iotvideo device run`, as typed; and a
viewer that stops reading (a stopped process) while another watches."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from iotvideo.app.player import MonitorPlayer
from iotvideo.media.audio import Tone, dominant_frequency
from iotvideo.protocol.errors import ErrorCode
from tests.cli.test_app_cli import app
from tests.link.world import World, app_sdk, make_world
from tests.live.helpers import stamp_of
from tests.support import Cloud, LineWatcher, ffprobe, loopback_ice, run_device

LOOPBACK = ["--ice-address", "127.0.0.1"]


@pytest.fixture(scope="module")
def camera(
    sqlite_cloud: Cloud, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, LineWatcher, Path]]:
    world = make_world(sqlite_cloud, devices=1)
    folder = tmp_path_factory.mktemp("camera")
    talk = folder / "talk"
    device = run_device(
        sqlite_cloud.url, world.device.certificate, folder, "--talk-dir", str(talk), *LOOPBACK
    )
    try:
        yield world, device, talk
    finally:
        assert device.stop(signal.SIGINT) in (0, 130)


def test_play_prints_the_start_up_trace(camera: tuple[World, LineWatcher, Path]) -> None:
    world, _, _ = camera
    done = app(world, "play", world.device.tid, "--seconds", "1", *LOOPBACK)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    stages = ["signaling", "ice", "dtls", "first_packet", "first_keyframe", "first_frame"]
    assert set(out["trace_ms"]) == set(stages)
    assert out["frames"] >= 5 and (out["width"], out["height"]) == (320, 180)


def test_snapshot_and_record(camera: tuple[World, LineWatcher, Path], tmp_path: Path) -> None:
    world, _, _ = camera
    picture = tmp_path / "now.jpg"
    shot = app(
        world, "snapshot", world.device.tid, "--out", str(picture), "--definition", "mid", *LOOPBACK
    )
    assert shot.returncode == 0, shot.stderr
    stream = ffprobe(picture)["streams"][0]
    assert (stream["width"], stream["height"]) == (640, 360)
    clip = tmp_path / "clip.mp4"
    rec = app(world, "record", world.device.tid, "--seconds", "2", "--out", str(clip), *LOOPBACK)
    assert rec.returncode == 0, rec.stderr
    info = ffprobe(clip)
    assert {s["codec_name"] for s in info["streams"]} == {"h264", "opus"}
    assert abs(float(info["format"]["duration"]) - 2.0) <= 0.2
    bad = app(world, "record", world.device.tid, "--out", str(tmp_path / "clip.avi"))
    assert bad.returncode == 2 and ".mp4" in bad.stderr


def test_talk_plays_a_file_on_the_device(
    camera: tuple[World, LineWatcher, Path], tmp_path: Path
) -> None:
    world, _, talk = camera
    speech = tmp_path / "tone.wav"
    with wave.open(str(speech), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(Tone(600, rate=48_000).next_samples(48_000).tobytes())
    said = app(world, "talk", world.device.tid, "--file", str(speech), *LOOPBACK)
    assert said.returncode == 0, said.stderr
    assert json.loads(said.stdout)["seconds"] == 1.0
    (heard,) = talk.glob("talk-*.wav")
    with wave.open(str(heard)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert pcm.size >= 24_000
    assert abs(dominant_frequency(pcm) - 600) <= 10


@pytest.fixture
def stopped_viewer(camera: tuple[World, LineWatcher, Path]) -> Iterator[None]:
    """`iotvideo app play` watching the camera, then stopped (SIGSTOP): it reads nothing."""
    world, device, _ = camera
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTVIDEO_")}
    env.update(
        IOTVIDEO_CLOUD=world.cloud.url,
        IOTVIDEO_ACCESS_ID=world.owner.access_id,
        IOTVIDEO_ACCESS_TOKEN=world.owner.token,
    )
    stuck = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iotvideo",
            "app",
            "play",
            world.device.tid,
            "--seconds",
            "60",
            *LOOPBACK,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        device.wait_for("session \\d+: monitor")
        stuck.send_signal(signal.SIGSTOP)
        yield
    finally:
        stuck.send_signal(signal.SIGCONT)
        stuck.terminate()
        stuck.wait(10)


async def test_a_viewer_that_stops_reading_does_not_slow_the_others(
    camera: tuple[World, LineWatcher, Path], stopped_viewer: None
) -> None:
    world, _, _ = camera
    with loopback_ice():
        async with app_sdk(world.cloud.url, world.owner) as sdk:
            player = MonitorPlayer(world.device.tid, sdk=sdk)
            await player.play()
            arrivals: list[tuple[float, int]] = []
            async with asyncio.timeout(20):
                async for frame in player.frames():
                    arrivals.append((time.monotonic(), stamp_of(frame).count))
                    if len(arrivals) == 46:
                        break
            await player.stop()
    # Three seconds of 15 fps video, every frame there and none late.
    counts = [c for _, c in arrivals]
    assert counts == list(range(counts[0], counts[0] + 46))
    gaps = np.diff([t for t, _ in arrivals])
    assert float(np.max(gaps)) < 0.25


async def test_a_killed_camera_ends_the_stream_with_an_error(
    sqlite_cloud: Cloud, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(make_world, sqlite_cloud, devices=1)
    cert = tmp_path / "device.cert"
    cert.write_text(world.device.certificate + "\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "iotvideo",
        "device",
        "run",
        "--cert",
        str(cert),
        "--cloud",
        sqlite_cloud.url,
        *LOOPBACK,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            while b" online" not in await proc.stderr.readline():
                pass
        with loopback_ice():
            async with app_sdk(world.cloud.url, world.owner) as sdk:
                player = MonitorPlayer(world.device.tid, sdk=sdk)
                await player.play()
                await player.wait_playing()
                proc.kill()  # no goodbye: the process is gone
                killed = time.monotonic()
                async with asyncio.timeout(15):
                    error = await player.wait_ended()
        assert error is not None
        assert error.code == ErrorCode.IVTermErr_msg_calling_timeout_disconnect
        assert time.monotonic() - killed < 5  # the link noticed, not ICE's 30 s
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
