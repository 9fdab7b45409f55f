"""The gateway against real parts: GStreamer RTSP cameras with scripted content
(tests/device/scripted_camera.py), a cloud, the app SDK.

One NVR device with four channels, each its own camera, and one camera device:
- each channel is played by its ``sourceId`` and shows its own burned-in number;
- a box crossing channel 2 is one motion event, starting within 1 s of its entering,
  with a picture that shows it, ending within the cool-down + 1 s of its leaving; on the
  link (``Event.motion``) and in the cloud's event list;
- the same box on channel 3, outside its zone, raises nothing; channel 1, a still scene
  with sensor noise and changing light, raises nothing in 60 s;
- channel 1 records onto the card its config gives it: its files list and play back by
  ``sourceId``;
- channel 4's camera is killed: the channel is reported offline, the camera device plays
  on, and the channel comes back by itself once its camera does.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from iotvideo.app import IoTVideo
from iotvideo.app.playback import PlaybackPlayer, get_playback_list
from iotvideo.app.player import MonitorPlayer
from iotvideo.device.gateway.model import gateway_model
from iotvideo.device.gateway.runner import Gateway
from iotvideo.protocol.errors import IVError
from tests.cloud.official import call
from tests.link.world import User, app_sdk, eventually
from tests.services import free_port
from tests.support import Cloud, loopback_ice

HERE = Path(__file__).parent


@dataclass
class Camera:
    port: int
    channel: int
    script: dict[str, object]
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(HERE / "scripted_camera.py"),
             str(self.port), str(self.channel), json.dumps(self.script)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


@pytest.fixture
def cameras() -> Iterator[dict[int, Camera]]:
    t0 = time.time()
    made = {
        1: Camera(free_port(), 1, {"light": 40, "period": 20}),
        2: Camera(free_port(), 2, {"boxes": [[t0 + 10, t0 + 16, 0.5]]}),
        3: Camera(free_port(), 3, {"boxes": [[t0 + 10, t0 + 16, 0.95]]}),
        4: Camera(free_port(), 4, {}),
    }
    try:
        for camera in made.values():
            camera.start()
        yield made
    finally:
        for camera in made.values():
            camera.kill()


@dataclass
class Site:
    nvr: str
    camera: str
    owner: User
    config: Path


def _site(cloud: Cloud, folder: Path, cameras: dict[int, Camera]) -> Site:
    """A vendor's NVR product (four channels) and camera product, one device of each,
    their owner, and the gateway's config file."""
    from tests.cloud.official import client

    api = client(cloud, cloud.new_key())
    tids = []
    for name, channels in (("nvr", 4), ("cam", 1)):
        pid = call(api, "CreateProduct", ProductModel=name, ProductName=name,
                   ProductDescription=name).Data.ProductId  # fmt: skip
        call(api, "RunIotModel", ProductId=pid, IotModel=json.dumps(gateway_model(channels)))
        device = call(api, "CreateDevices", ProductId=pid, Number=1).Data[0]
        (folder / f"{device.Tid}.cert").write_text(device.Certificate)
        tids.append(device.Tid)
    access_id = call(api, "CreateAppUsr", CunionId="owner").AccessId
    for tid in tids:
        call(api, "CreateBinding", AccessId=access_id, Tid=tid, Role="owner")
    call(api, "CreateStorageService", PkgId="yc1m3d", Tid=tids[0], ChnNum=2)
    token = call(api, "CreateUsrToken", AccessId=access_id, UniqueId="t", TtlMinutes=60)
    zones = dict.fromkeys(range(1, 5), "[[[0,0],[1,0],[1,1],[0,1]]]")
    zones[3] = "[[[0,0],[1,0],[1,0.5],[0,0.5]]]"  # the top half; its box is at the bottom
    cards = dict.fromkeys(range(1, 5), "")
    cards[1] = 'card = { dir = "card/nvr-1", max_days = 7, file_seconds = 5 }\n'
    channels = "".join(
        f'[[device.channel]]\nvideo = "{cameras[n].url}"\n{cards[n]}'
        f"motion = {{ cooldown = 3, zones = {zones[n]} }}\n"
        for n in range(1, 5)
    )
    config = folder / "cameras.toml"
    config.write_text(
        f'cloud = ["{cloud.url}"]\ndata = "state"\n'
        f'[[device]]\ncert = "{tids[0]}.cert"\n{channels}'
        f'[[device]]\ncert = "{tids[1]}.cert"\n[[device.channel]]\nvideo = "testsrc:"\n'
        "motion = { enabled = false }\n"
    )
    return Site(tids[0], tids[1], User(access_id, token.AccessToken), config)


@contextlib.asynccontextmanager
async def running(site: Site) -> AsyncIterator[Gateway]:
    gateway = Gateway(site.config)
    with loopback_ice():
        await gateway.start()
        try:
            yield gateway
        finally:
            await gateway.stop()


async def _channel_number(player: MonitorPlayer) -> int:
    """The number burned into the channel's picture: white squares at the top left."""
    async with asyncio.timeout(15):
        async for frame in player.frames():
            strip = frame.to_ndarray(format="gray")[10, 0 : 24 * 8]
            return sum(1 for n in range(8) if strip[n * 24 + 10] > 200)
    raise AssertionError("no picture")


async def _online(sdk: IoTVideo, tid: str, number: int, online: int, timeout: float = 30) -> None:
    """Until the cloud holds channel ``number`` of ``tid`` as ``online`` (the gateway's
    report; read, not awaited as a push: the first reports may go out before the app's
    watch of the device is in place)."""

    async def reported() -> None:
        state = await sdk.message.read_property(tid, f"ProReadonly.chn{number}")
        assert isinstance(state, dict) and state.get("stVal", {}).get("online") == online, state

    await eventually(reported, timeout=timeout)


async def test_an_nvr_and_a_camera_through_the_gateway(
    sqlite_cloud: Cloud, cameras: dict[int, Camera], tmp_path: Path
) -> None:
    site = await asyncio.to_thread(_site, sqlite_cloud, tmp_path, cameras)
    started = time.time()
    async with app_sdk(sqlite_cloud.url, site.owner) as sdk, running(site) as gateway:
        motions: list[dict[str, object]] = []  # with the time each arrived ("at")
        sdk.message.add_listener(
            lambda m: m.device_id == site.nvr and m.kind == "event" and m.name == "motion"
            and motions.append({**m.value, "at": time.time()})  # type: ignore[func-returns-value]
        )  # fmt: skip
        for number in range(1, 5):
            await _online(sdk, site.nvr, number, 1)
        # Each sourceId plays its own channel.
        for number in range(1, 5):
            player = MonitorPlayer(site.nvr, sdk=sdk, source_id=number)
            await player.play()
            assert await _channel_number(player) == number
            await player.stop()
        # Channel 4's camera dies: reported offline; the camera device plays on.
        cameras[4].kill()
        await _online(sdk, site.nvr, 4, 0)
        player = MonitorPlayer(site.camera, sdk=sdk)
        await player.play()
        await _frames(player, 10)
        await player.stop()
        cameras[4].start()
        await _online(sdk, site.nvr, 4, 1, timeout=60)
        # 60 s of channel 1's still, noisy scene; the box on channels 2 and 3.
        await asyncio.sleep(max(0.0, started + 62 - time.time()))
        channels = gateway.devices[site.nvr].channels
        assert (channels[1].events, channels[3].events, channels[2].events) == (0, 0, 1)
        page = await _event_list(sdk, site.nvr, started)
        # Channel 1 records onto its card (the config's card): its files list and play
        # back by sourceId, with channel 1's picture; channel 2 has no card.
        files = await get_playback_list(site.nvr, sdk=sdk, source_id=1)
        assert files.items and all(i.end_time > i.start_time for i in files.items)
        assert (tmp_path / "card" / "nvr-1").is_dir()
        playback = PlaybackPlayer(site.nvr, files.items[0], sdk=sdk, source_id=1)
        await playback.play()
        assert await _channel_number(playback) == 1
        await playback.stop()
        with pytest.raises(IVError):
            await get_playback_list(site.nvr, sdk=sdk, source_id=2)
    box_enter = cameras[2].script["boxes"][0]  # type: ignore[index]
    starts = [m for m in motions if "end" not in m]
    ends = [m for m in motions if "end" in m]
    assert len(starts) == 1 and len(ends) == 1 and starts[0]["chn"] == 2
    assert abs(float(starts[0]["start"]) - box_enter[0]) <= 1.0, (starts, box_enter)
    # It ends (is told) within the cool-down (3 s) + 1 s of the box leaving.
    assert box_enter[1] <= float(ends[0]["at"]) <= box_enter[1] + 3 + 1, (ends, box_enter)
    assert box_enter[1] - 1 <= float(ends[0]["end"]) <= box_enter[1] + 2, (ends, box_enter)
    (event,) = page["list"]  # type: ignore[misc]
    assert event["alarmType"] & 1
    assert _shows_a_box(await _picture(page, event))


async def _frames(player: MonitorPlayer, count: int) -> None:
    seen = 0
    async with asyncio.timeout(15):
        async for _frame in player.frames():
            seen += 1
            if seen == count:
                return


async def _event_list(sdk: IoTVideo, tid: str, since: float) -> dict[str, object]:
    """Channel 2's event page, once its event has its end (sent after the cool-down and
    uploaded in the background)."""

    async def ended() -> dict[str, object]:
        page = await sdk.vas.get_event_list(tid, int(since) - 5, int(time.time()) + 5, source_id=2)
        assert page["list"] and all(e["endTime"] > e["startTime"] for e in page["list"]), page
        return page

    return await eventually(ended, timeout=20, every=0.5)


async def _picture(page: dict[str, object], event: dict[str, object]) -> bytes:
    import httpx

    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(str(page["imgUrlPrefix"]) + str(event["imgUrlSuffix"]))
    answer.raise_for_status()
    return answer.content


def _shows_a_box(jpeg: bytes) -> bool:
    """A white square of about the box's size below the number strip."""
    with av.open(io.BytesIO(jpeg)) as container:
        frame = next(container.decode(video=0))
    gray = frame.to_ndarray(format="gray")[24:]
    white = gray > 235
    return bool(white.sum() > 0.5 * 36 * 36 and np.count_nonzero(white.any(axis=0)) < 60)
