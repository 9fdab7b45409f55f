"""`iotvideo app ...` and `iotvideo device run` against a real cloud, as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.link.world import World, make_world
from tests.support import Cloud, LineWatcher, run_device


@pytest.fixture(scope="module")
def running(
    sqlite_cloud: Cloud, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, LineWatcher]]:
    world = make_world(sqlite_cloud)
    device = run_device(
        sqlite_cloud.url,
        world.device.certificate,
        tmp_path_factory.mktemp("cert"),
        "--motion-interval",
        "0.2",
        "--temperature-interval",
        "0.2",
    )
    try:
        yield world, device
    finally:
        assert device.stop(2) in (0, 130)  # SIGINT, as Ctrl-C


def app(
    world: World, *args: str, user: str = "owner", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    who = getattr(world, user)
    base = {k: v for k, v in os.environ.items() if not k.startswith("IOTVIDEO_")}
    base.update(
        IOTVIDEO_CLOUD=world.cloud.url,
        IOTVIDEO_ACCESS_ID=who.access_id,
        IOTVIDEO_ACCESS_TOKEN=who.token,
    )
    return subprocess.run(
        [sys.executable, "-m", "iotvideo", "app", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=base | (env or {}),
    )


def test_prop_get_and_set(running: tuple[World, LineWatcher]) -> None:
    world, _ = running
    tid = world.device.tid
    got = app(world, "prop", "get", tid, "ProWritable._logLevel.setVal")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == 3
    whole = json.loads(app(world, "prop", "get", tid).stdout)
    assert "temperature" in whole["ProReadonly"]
    done = app(world, "prop", "set", tid, "ProWritable.nightMode", '{"setVal": 2}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stVal"] == 2


def test_user_props_action_and_data(running: tuple[World, LineWatcher]) -> None:
    world, _ = running
    tid = world.device.tid
    assert app(world, "prop", "add", tid, "ProUser.label", '"garage"').returncode == 0
    assert json.loads(app(world, "prop", "get", tid, "ProUser.label.val").stdout) == "garage"
    assert app(world, "prop", "delete", tid, "ProUser.label").returncode == 0
    acted = app(world, "action", tid, "Action.cameraOn", '{"ctlVal": 1}')
    assert json.loads(acted.stdout) == {"cameraOn": 1}
    echoed = app(world, "send-data", tid, "hello", "--reply")
    assert json.loads(echoed.stdout) == {"topic": "", "echo": "HELLO"}
    quiet = app(world, "send-data", tid, "hello")
    assert quiet.returncode == 0 and quiet.stdout == ""


def test_watch_prints_json_lines(running: tuple[World, LineWatcher]) -> None:
    world, _ = running
    out = app(world, "watch", world.device.tid, "--count", "3", user="guest")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 3
    assert all(
        m["device_id"] == world.device.tid and m["kind"] in ("event", "property") for m in lines
    )


def test_errors_print_the_seed_code(running: tuple[World, LineWatcher], tmp_path: Path) -> None:
    world, _ = running
    bad = app(world, "prop", "get", world.device.tid, "Nope.x")
    assert bad.returncode == 1
    assert "IVTermErr_msg_gdm_handle_leaf_path_error (20101)" in bad.stderr
    guest = app(
        world, "prop", "set", world.device.tid, "ProWritable.led.setVal", "false", user="guest"
    )
    assert guest.returncode == 1 and "IVASrvErr_dst_error_relation (8003)" in guest.stderr
    stranger = app(
        world, "prop", "get", world.device.tid, "", env={"IOTVIDEO_ACCESS_TOKEN": "usr_nope"}
    )
    assert stranger.returncode == 1 and "(20010)" in stranger.stderr
    missing = app(world, "prop", "get", world.device.tid, env={"IOTVIDEO_CLOUD": ""})
    assert missing.returncode == 2 and "--cloud" in missing.stderr
    cert = tmp_path / "bad.cert"
    cert.write_text("not a certificate")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "iotvideo",
            "device",
            "run",
            "--cert",
            str(cert),
            "--cloud",
            world.cloud.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "Certificate" in run.stderr


def test_device_model_prints_the_demo_model() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "iotvideo", "device", "model"], capture_output=True, text=True
    )
    assert "nightMode" in json.loads(out.stdout)["ProWritable"]


def test_firmware_prints_the_offer(running: tuple[World, LineWatcher]) -> None:
    world, _ = running
    tid = world.device.tid
    assert json.loads(app(world, "firmware", tid).stdout) == {}
    world.vendor(
        "UploadOtaVersion",
        ProductId=world.product_id,
        OtaVersion="1.5.1",
        VersionUrl="http://127.0.0.1:9/fw.bin",
        FileSize=3,
        Md5="0" * 32,
        Contents={"Default": "faster", "Cn": "更快"},
    )
    world.vendor("RunOtaVersion", ProductId=world.product_id, OtaVersion="1.5.1")
    out = app(world, "firmware", tid, "--language", "zh")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "downUrl": "http://127.0.0.1:9/fw.bin",
        "version": "1.5.1",
        "upgDescs": "更快",
    }
    # The device runs 1.0.1 (the simulated camera's default); asking as 1.5.1: up to date.
    assert json.loads(app(world, "firmware", tid, "--current-version", "1.5.1").stdout) == {}
