"""``iotvideo gateway`` as a user runs it: ``check`` probes each camera and names each bad
entry; the gateway runs what it can, says in one line what it cannot, and SIGHUP adds a
channel and removes another while a third plays on."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from iotvideo.app import IoTVideo
from iotvideo.app.player import MonitorPlayer
from iotvideo.device.gateway.model import gateway_model
from tests.cloud.official import call, client
from tests.link.world import User, app_sdk, eventually
from tests.services import free_port
from tests.support import Cloud, LineWatcher, loopback_ice


def _device(cloud: Cloud, folder: Path, channels: int) -> tuple[str, User]:
    api = client(cloud, cloud.new_key())
    pid = call(api, "CreateProduct", ProductModel="gw", ProductName="gw",
               ProductDescription="gw").Data.ProductId  # fmt: skip
    call(api, "RunIotModel", ProductId=pid, IotModel=json.dumps(gateway_model(channels)))
    device = call(api, "CreateDevices", ProductId=pid, Number=1).Data[0]
    (folder / "gw.cert").write_text(device.Certificate)
    access_id = call(api, "CreateAppUsr", CunionId="owner").AccessId
    call(api, "CreateBinding", AccessId=access_id, Tid=device.Tid, Role="owner")
    token = call(api, "CreateUsrToken", AccessId=access_id, UniqueId="t", TtlMinutes=60)
    return device.Tid, User(access_id, token.AccessToken)


def _channels(*numbers: int) -> str:
    return "".join(
        f'[[device.channel]]\nnumber = {n}\nvideo = "testsrc:?fps=10"\n'
        "motion = { enabled = false }\n"
        for n in numbers
    )


def test_check_probes_each_channel_and_names_each_bad_entry(
    sqlite_cloud: Cloud, tmp_path: Path
) -> None:
    _device(sqlite_cloud, tmp_path, 2)
    dead = f"rtsp://user:secret@127.0.0.1:{free_port()}/cam"
    (tmp_path / "cameras.toml").write_text(
        f'cloud = "{sqlite_cloud.url}"\n'
        f'[[device]]\ncert = "gw.cert"\n{_channels(1)}'
        f'[[device.channel]]\nnumber = 2\nvideo = "{dead}"\n'
        '[[device]]\ncert = "missing.cert"\n' + _channels(1)
    )
    done = subprocess.run(
        [sys.executable, "-m", "iotvideo", "gateway", "check", "--config", "cameras.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done
    assert len(lines) == 3, lines
    assert "device 2: cert: cannot read" in lines[0] and "missing.cert" in lines[0]
    assert "channel 1 video testsrc:?fps=10: h264 320x180 10 fps" in lines[1]
    assert "channel 2 video rtsp://user:***@127.0.0.1" in lines[2] and "cannot open" in lines[2]
    assert "secret" not in done.stdout + done.stderr


async def test_a_bad_entry_is_one_line_and_sighup_changes_only_what_changed(
    sqlite_cloud: Cloud, tmp_path: Path
) -> None:
    tid, owner = await asyncio.to_thread(_device, sqlite_cloud, tmp_path, 4)
    config = tmp_path / "cameras.toml"
    head = f'cloud = "{sqlite_cloud.url}"\n[[device]]\ncert = "gw.cert"\n'
    duplicate = '[[device]]\ncert = "gw.cert"\n' + _channels(1)
    # Channel 4's camera never answers: one line, retried, and the rest runs.
    dead = f'[[device.channel]]\nnumber = 4\nvideo = "rtsp://127.0.0.1:{free_port()}/cam"\n'
    head += dead
    config.write_text(head + _channels(1, 2) + duplicate)
    with loopback_ice():
        async with app_sdk(sqlite_cloud.url, owner) as sdk:
            proc = subprocess.Popen(  # noqa: ASYNC220 - started once, read by a thread
                [sys.executable, "-m", "iotvideo", "gateway", "--config", str(config),
                 "--ice-address", "127.0.0.1"],
                stderr=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                text=True,
            )  # fmt: skip
            gateway = LineWatcher(proc)
            try:
                await _reload_under_way(gateway, sdk, tid, config, head, duplicate, proc)
            finally:
                assert gateway.stop(signal.SIGINT) == 0


async def _reload_under_way(
    gateway: LineWatcher,
    sdk: IoTVideo,
    tid: str,
    config: Path,
    head: str,
    duplicate: str,
    proc: subprocess.Popen[str],
) -> None:
    await asyncio.to_thread(
        gateway.wait_for, rf"device 2: Tid {tid} is device 1 .* \(this device does not run\)"
    )
    await asyncio.to_thread(
        gateway.wait_for, r"device 1 .* channel 4: cannot open rtsp://.*; retrying with backoff"
    )
    for number in (1, 2):
        await _online(sdk, tid, number)
    steady = MonitorPlayer(tid, sdk=sdk, source_id=1)
    await steady.play()
    arrivals: list[float] = []

    async def watch() -> None:
        async for _frame in steady.frames():
            arrivals.append(time.monotonic())

    watching = asyncio.ensure_future(watch())
    gone = MonitorPlayer(tid, sdk=sdk, source_id=2)
    await gone.play()
    await asyncio.to_thread(config.write_text, head + _channels(1, 3) + duplicate)
    proc.send_signal(signal.SIGHUP)
    await asyncio.to_thread(gateway.wait_for, r"channel 2 stopped")
    await asyncio.to_thread(gateway.wait_for, r"channel 3 started")
    async with asyncio.timeout(20):
        error = await gone.wait_ended()
    assert error is not None and error.code == 20002  # the device hung up
    await _online(sdk, tid, 3)
    added = MonitorPlayer(tid, sdk=sdk, source_id=3)
    await added.play()
    await added.stop()
    async with asyncio.timeout(10):  # ten more frames of channel 1
        async for _frame in steady.frames():
            if len(arrivals) >= 10 and arrivals[-1] > time.monotonic() - 0.5:
                break
    watching.cancel()
    await steady.stop()
    # Channel 1 never stopped: no gap in its frames (10 fps) across the reload.
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) < 1.0, max(gaps)


async def _online(sdk: IoTVideo, tid: str, number: int) -> None:
    """Until the cloud holds channel ``number`` as online (the gateway's report)."""

    async def reported() -> None:
        state = await sdk.message.read_property(tid, f"ProReadonly.chn{number}")
        assert isinstance(state, dict) and state.get("stVal", {}).get("online") == 1, state

    await eventually(reported, timeout=30)
