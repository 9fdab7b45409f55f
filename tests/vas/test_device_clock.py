"""Cameras with a wrong clock (no battery-backed clock: they boot with the wrong time).

The device's clock is shifted by -1 h, -10 min, +4 min and +1 day; the cloud runs on the
real one. The device learns the cloud's time from the link's ``hello``: it logs in (a
login more than 5 minutes off was refused), its cloud-recording segments are accepted (a
segment signed 10 minutes off was refused as "clock skew" and dropped), and its segments,
cloud events and link events are stored at the real time, where the app's view of the
last minutes finds them (a device 4 minutes fast had them all in the future)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from iotvideo.device import DeviceClient
from iotvideo.device.cloudrec import CloudRecorder
from iotvideo.device.media import DeviceMedia
from iotvideo.protocol.link import clock_offset
from tests.link.world import World, app_sdk, device_client, make_world
from tests.support import Cloud

SHIFTS = {"-1h": -3600, "-10min": -600, "+4min": 240, "+1day": 86_400}
REAL = time.time


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> World:
    """Devices with a cloud-storage plan (the vendor's calls are signed by its own clock,
    which is right: made before any test shifts this process's)."""
    world = make_world(cloud, devices=len(SHIFTS))
    for device in world.devices:
        if device != world.device:
            world.vendor(
                "CreateBinding", AccessId=world.owner.access_id, Tid=device.tid, Role="owner"
            )
        world.vendor("CreateStorageService", PkgId="yc1m3d", Tid=device.tid)
    return world


@pytest.fixture
def shifted(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """This process's wall clock (what the device SDK reads) ``request.param`` s off."""
    shift = int(request.param)
    monkeypatch.setattr(time, "time", lambda: REAL() + shift)
    return shift


@pytest.mark.parametrize("shifted", SHIFTS.values(), ids=SHIFTS.keys(), indirect=True)
async def test_a_device_with_a_wrong_clock_keeps_the_cloud_s_time(
    world: World, shifted: int, tmp_path: Path
) -> None:
    device = world.devices[list(SHIFTS.values()).index(shifted)]
    tid = device.tid
    started = int(REAL())
    async with device_client(world.cloud.url, device, _reads) as dc:
        assert abs(dc.link.clock_offset + shifted) < 2, dc.link.clock_offset
        assert abs(dc.now() - REAL()) < 2
        media = DeviceMedia(dc, video="testsrc:?size=320x180&fps=15", audio="none")
        recorder = CloudRecorder(dc, media, buffer_dir=tmp_path / "buf", segment_seconds=1)
        await recorder.start()
        alarm = await recorder.event(1)
        async with asyncio.timeout(30):
            await recorder.wait_uploaded(2)
        await recorder.stop(drain=True)
        await media.close()
        assert recorder.upload_failures == 0
        async with app_sdk(world.cloud.url, world.owner) as sdk:
            # A live read carries the device's time.
            live = await sdk.message.read_property(tid, "ProReadonly.temperature")
            assert abs(live["t"] - REAL()) < 3, live
    ended = int(REAL()) + 1
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        # The app's "last minutes" (by the real clock) hold the segments and the event.
        ranges = await sdk.vas.get_video_play_list(tid, started - 1, ended)
        assert ranges and all(started - 2 <= r["start"] <= r["end"] <= ended for r in ranges)
        events = await sdk.vas.get_event_list(tid, started - 1, ended)
        assert [e["alarmId"] for e in events["list"]] == [alarm]
        address = await sdk.vas.get_video_play_address(tid, started - 1, ended)
        async with httpx.AsyncClient() as http:
            playlist = (await http.get(address["url"])).text
        assert playlist.count("#EXTINF") >= 2, playlist


def _reads(dc: DeviceClient) -> None:
    dc.on_read("temperature")(lambda: 21.5)


def test_clock_offset_rule() -> None:
    assert clock_offset(1000.0, 400.0) == 600.0
    assert clock_offset(400.0, 1000.0) == -600.0
    assert clock_offset(1000.9, 1000.0) == 0.0  # within a second: NTP knows better
    # A reading that was on its way: a busy cloud's hello 1.5 s late moves nothing...
    assert clock_offset(1000.0, 1001.5, within=1.0) == 0.0
    # ...and a clock truly off is set to the middle of what the reading allows.
    assert clock_offset(1000.0, 400.0, within=2.0) == 601.0
    assert clock_offset(400.0, 1000.0, within=2.0) == -599.0
