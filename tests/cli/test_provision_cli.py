"""Provisioning from the shell: the phone's `iotvideo app netconfig ...` and the camera's
`iotvideo device provision --scan`, as a user types them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import segno

from tests.cli.test_app_cli import app
from tests.link.world import World, make_world
from tests.support import Cloud, LineWatcher


def _world_env(world: World, user: str) -> dict[str, str]:
    who = getattr(world, user)
    base = {k: v for k, v in os.environ.items() if not k.startswith("IOTVIDEO_")}
    return base | {
        "IOTVIDEO_CLOUD": world.cloud.url,
        "IOTVIDEO_ACCESS_ID": who.access_id,
        "IOTVIDEO_ACCESS_TOKEN": who.token,
    }


def _provision(cert: Path, cloud: str, image: Path) -> list[str]:
    """`iotvideo device provision --scan IMAGE`, as a camera runs it."""
    device = [sys.executable, "-m", "iotvideo", "device", "provision", "--cert", str(cert)]
    return [*device, "--cloud", cloud, "--scan", str(image)]


def test_qr_code_from_the_shell_provisions_a_camera(sqlite_cloud: Cloud, tmp_path: Path) -> None:
    world = make_world(sqlite_cloud)
    box = world.devices[1]  # nobody owns it yet
    cert = tmp_path / "device.cert"
    cert.write_text(box.certificate + "\n")
    waiter = subprocess.Popen(
        [sys.executable, "-m", "iotvideo", "app", "netconfig", "token", "--wait", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_world_env(world, "owner"),
    )
    phone = LineWatcher(waiter, waiter.stdout)
    camera_proc: subprocess.Popen[str] | None = None
    try:
        token = phone.wait_for(r"^(bt_\S+)$").group(1)
        png = tmp_path / "code.png"
        made = app(
            world,
            "netconfig",
            "qr",
            "--ssid",
            "home",
            "--password",
            "pw 1",
            "--token",
            token,
            "--out",
            str(png),
        )
        assert made.returncode == 0, made.stderr
        shown = json.loads(made.stdout)
        assert shown["token"] == token and png.read_bytes().startswith(b"\x89PNG")
        camera_proc = subprocess.Popen(
            _provision(cert, world.cloud.url, png),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        camera = LineWatcher(camera_proc)
        camera.wait_for("would join Wi-Fi 'home'")
        camera.wait_for(f"device {box.tid} online")
        result = json.loads(phone.wait_for(r"^\{.*\}$").group(0))
        assert result == {"device_id": box.tid, "code": 0}
        assert waiter.wait(30) == 0 and phone.stop() == 0
        assert not any("pw 1" in line for line in camera.lines)  # the password is never logged
        # The token binds the camera to the user who made it.
        bound = world.vendor(
            "CreateBinding",
            AccessId=world.owner.access_id,
            Tid=box.tid,
            Role="owner",
            BindToken=token,
        )
        assert bound.AccessToken
        assert camera.stop(signal.SIGINT) in (0, 130)  # Ctrl-C
    finally:
        if camera_proc is not None and camera_proc.poll() is None:
            camera_proc.kill()
        if waiter.poll() is None:
            waiter.kill()


def test_scanning_a_foreign_code_is_refused(sqlite_cloud: Cloud, tmp_path: Path) -> None:
    world = make_world(sqlite_cloud, devices=1)
    cert = tmp_path / "device.cert"
    cert.write_text(world.device.certificate + "\n")
    png = tmp_path / "foreign.png"
    segno.make_qr("https://example.com/").save(png, scale=8)
    done = subprocess.run(
        _provision(cert, world.cloud.url, png),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "IVNetCfgErr_DevStatusErr" in done.stderr and "iotvideo" in done.stderr


def test_netconfig_commands_need_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTVIDEO_")}
    done = subprocess.run(
        [sys.executable, "-m", "iotvideo", "app", "netconfig", "token"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2 and "--access-id" in done.stderr
