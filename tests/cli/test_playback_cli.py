"""`iotvideo app playback days|list|play` and `iotvideo app download` against `iotvideo
device run --sd-dir`, as typed; then a power cut (kill -9) mid-file and a restart."""

from __future__ import annotations

import hashlib
import json
import signal
import time
from pathlib import Path

from iotvideo.device.card import Card
from tests.cli.test_app_cli import app
from tests.device.test_card import consistent
from tests.link.world import make_world
from tests.support import Cloud, ffprobe, run_device

LOOPBACK = ["--ice-address", "127.0.0.1"]


def test_card_commands_and_a_power_cut(sqlite_cloud: Cloud, tmp_path: Path) -> None:
    world = make_world(sqlite_cloud, devices=1)
    tid = world.device.tid
    sd = tmp_path / "sd"
    args = ["--sd-dir", str(sd), "--sd-file-seconds", "4", *LOOPBACK]
    device = run_device(sqlite_cloud.url, world.device.certificate, tmp_path, *args)
    try:
        for _ in range(2):
            device.wait_for(r"card: recorded \d+\.ts")

        days = app(world, "playback", "days", tid)
        assert days.returncode == 0, days.stderr
        assert json.loads(days.stdout)["days"] == [time.localtime().tm_mday]

        listed = app(world, "playback", "list", tid)
        assert listed.returncode == 0, listed.stderr
        items = json.loads(listed.stdout)["items"]
        assert len(items) >= 2 and all(i["end"] > i["start"] for i in items)

        at = items[0]["start"] + 1000
        played = app(
            world,
            "playback",
            "play",
            tid,
            "--at",
            str(at),
            "--speed",
            "4",
            "--seconds",
            "1.5",
            *LOOPBACK,
        )
        assert played.returncode == 0, played.stderr
        out = json.loads(played.stdout)
        assert out["frames"] >= 5 and 0 < out["first_frame_ms"] < 5000
        assert at - 2100 <= out["position_start"] <= at
        assert out["position_end"] > out["position_start"]

        target = tmp_path / "clip.ts"
        got = app(world, "download", tid, str(items[1]["start"]), "--out", str(target), *LOOPBACK)
        assert got.returncode == 0, got.stderr
        result = json.loads(got.stdout)
        assert result["complete"] and result["size"] == target.stat().st_size
        original = (sd / f"{items[1]['start']}.ts").read_bytes()
        assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(original).digest()
        assert {s["codec_name"] for s in ffprobe(target)["streams"]} == {"h264", "opus"}
        # Half a file: the download resumes from its size.
        target.write_bytes(original[: len(original) // 2])
        again = app(world, "download", tid, str(items[1]["start"]), "--out", str(target), *LOOPBACK)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["resumed_from"] == len(original) // 2
        assert target.read_bytes() == original

        missing = app(world, "download", tid, "12345", "--out", str(tmp_path / "x.ts"), *LOOPBACK)
        assert missing.returncode == 1 and "21064" in missing.stderr
        stranger = app(world, "playback", "list", tid, user="stranger")
        assert stranger.returncode == 1 and "8003" in stranger.stderr

        # A power cut while a file is being written: once the camera says its first
        # second is on the card (and in the index).
        device.wait_for(r"card: recorded \d+\.ts")
        said = device.wait_for(r"card: recording (\d+)\.ts, (\d+) ms on the card")
        row = (int(said[1]), int(said[1]) + int(said[2]))  # the file, and its end then
    finally:
        device.stop(signal.SIGKILL)
    cut = Card(sd)
    cut.mount()
    consistent(cut)
    assert cut.repaired + cut.dropped >= 1
    # The cut file plays up to the cut: what the index had seen written, less what the
    # muxer may hold back to interleave audio and video (half a second at most).
    kept = cut.file(row[0])
    assert kept is not None and kept.complete
    assert kept.end_ms >= row[1] - 700  # less the last frame, maybe cut short
    video = [p for p in cut.read(kept.start_ms) if p.kind == "video" and p.time_ms < kept.end_ms]
    assert video[0].keyframe and kept.end_ms - 150 <= video[-1].time_ms < kept.end_ms
    cut.close()

    # Restarted on the same card, the camera records on and serves what it kept.
    device = run_device(sqlite_cloud.url, world.device.certificate, tmp_path, *args)
    try:
        device.wait_for(r"card: recorded \d+\.ts")
        listed = app(world, "playback", "list", tid)
        after = json.loads(listed.stdout)["items"]
        assert [i["start"] for i in after[: len(items)]] == [i["start"] for i in items]
    finally:
        assert device.stop(signal.SIGINT) in (0, 130)
