"""`iotvideo restream` as typed, against `iotvideo device run`: with flags (a user and a
password from stdin) and with a config file (a camera token), read by ffprobe; a bad
config file is one line naming what is wrong."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.link.world import World, make_world
from tests.services import free_port
from tests.support import Cloud, LineWatcher, ffprobe, run_device

LOOPBACK = ["--ice-address", "127.0.0.1"]


@pytest.fixture(scope="module")
def camera(sqlite_cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = make_world(sqlite_cloud, devices=1)
    device = run_device(
        sqlite_cloud.url, world.device.certificate, tmp_path_factory.mktemp("cam"), *LOOPBACK
    )
    try:
        yield world
    finally:
        assert device.stop(signal.SIGINT) in (0, 130)


def _restream(world: World, *args: str, stdin: str = "") -> LineWatcher:
    proc = subprocess.Popen(
        [sys.executable, "-m", "iotvideo", "restream", "--cloud", world.cloud.url,
         "--access-id", world.owner.access_id, "--host", "127.0.0.1", *LOOPBACK, *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={"PATH": "/usr/bin:/bin", "IOTVIDEO_ACCESS_TOKEN": world.owner.token},
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(stdin + "\n")
    proc.stdin.close()
    return LineWatcher(proc, proc.stdout)


def test_flags_serve_every_device_of_the_user(camera: World) -> None:
    rtsp, web = free_port(), free_port()
    served = _restream(
        camera, "--rtsp-port", str(rtsp), "--http-port", str(web),
        "--rtsp-user", "nvr", "--rtsp-password-stdin", stdin="a password",
    )  # fmt: skip
    try:
        served.wait_for(rf"rtsp://127\.0\.0\.1:{rtsp}/{camera.device.tid}")
        info = ffprobe(
            f"rtsp://nvr:a%20password@127.0.0.1:{rtsp}/{camera.device.tid}",
            "-rtsp_transport", "tcp", timeout=30,
        )  # fmt: skip
        assert info["streams"][0]["codec_name"] == "h264"
        shot = httpx.get(
            f"http://127.0.0.1:{web}/{camera.device.tid}/snapshot.jpg",
            auth=("nvr", "a password"), timeout=20,
        )  # fmt: skip
        assert shot.status_code == 200 and shot.content.startswith(b"\xff\xd8")
    finally:
        assert served.stop(signal.SIGINT) == 0, "".join(served.lines)


def test_a_config_file_with_a_camera_token(camera: World, tmp_path: Path) -> None:
    rtsp, web = free_port(), free_port()
    config = tmp_path / "restream.toml"
    config.write_text(
        f"rtsp_port = {rtsp}\nhttp_port = {web}\nidle = 3\n"
        f'[[camera]]\ntid = "{camera.device.tid}"\ntoken = "0123456789abcdef-token"\n'
    )
    served = _restream(camera, "--config", str(config))
    try:
        served.wait_for(r"serving 1 device")
        url = f"rtsp://127.0.0.1:{rtsp}/{camera.device.tid}?token=0123456789abcdef-token"
        info = ffprobe(url, "-rtsp_transport", "tcp", timeout=30)
        assert info["streams"][0]["codec_name"] == "h264"
        refused = subprocess.run(
            ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", url.replace("-token", "-nope")],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert refused.returncode != 0 and "401" in refused.stderr
    finally:
        assert served.stop(signal.SIGINT) == 0, "".join(served.lines)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rtsp_port = 99999\n", "rtsp_port: a whole number 0..65535"),
        ("colour = 1\n", "unknown key(s) colour"),
        ('[[camera]]\ntid = "X"\ntoken = "short"\n', "camera 1: token: at least 16"),
        ('[[camera]]\ntid = "X"\n[[camera]]\ntid = "X"\n', "camera 2: X is listed twice"),
        ("", "serves nothing without credentials"),
    ],
)
def test_a_bad_config_is_one_line(camera: World, tmp_path: Path, text: str, says: str) -> None:
    config = tmp_path / "restream.toml"
    config.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "iotvideo", "restream", "--config", str(config),
         "--cloud", camera.cloud.url, "--access-id", camera.owner.access_id,
         "--access-token", camera.owner.token],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr
