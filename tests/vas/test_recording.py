"""Cloud recording end to end: a simulated camera records while its service is in use;
the app lists the ranges and plays them as HLS (read back by Debian's ffprobe)."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from iotvideo.app.cloudplayer import CloudPlayer
from iotvideo.device.cloudrec import CloudRecorder
from iotvideo.device.media import DeviceMedia
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.link import Backoff
from tests.cli.test_app_cli import app
from tests.link.world import World, app_sdk, device_client, make_world
from tests.support import Cloud, ffprobe, start_cloud


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> World:
    """A vendor's world on each backend (SQLite and PostgreSQL)."""
    return make_world(cloud, devices=2)


def decoded_seconds(url: str) -> float:
    """Decode every frame of an HLS URL with ffprobe; their count at 15 fps."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "json",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return int(json.loads(out)["streams"][0]["nb_read_frames"]) / 15


async def frames_pass(media: DeviceMedia, seconds: float) -> None:
    """Let the camera's stream run until ``seconds`` have passed by the wall clock the
    recorder stamps its packets with. Counting frames is not enough: a loaded machine's
    encoder falls behind and then delivers its backlog in a burst, so 45 frames at 15 fps
    can arrive within one second (seen in CI)."""
    stream = media.channels["1"].video.stream("low")
    viewer = stream.add_viewer()
    until = time.time() + seconds
    try:
        while time.time() < until:
            assert await viewer.get() is not None
    finally:
        stream.remove_viewer(viewer)


async def test_record_play_with_a_gap(world: World, tmp_path: Path) -> None:
    tid = world.device.tid
    await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=tid)
    started = int(time.time())
    async with device_client(world.cloud.url, world.device) as device:
        media = DeviceMedia(device, video="testsrc:?fps=15", audio="tone:440")
        recorder = CloudRecorder(device, media, buffer_dir=tmp_path / "buf", segment_seconds=2)
        await recorder.start()
        await recorder.wait_uploaded(2)  # > 4 s recorded
        await recorder.stop()  # the camera restarts...
        await frames_pass(media, 3)  # ...three seconds later
        await recorder.start()
        async with asyncio.timeout(20):
            await recorder.wait_uploaded(recorder.uploaded + 2)
            await recorder.stop(drain=True)
        await media.close()
    ended = int(time.time())  # a range wholly in the past: a complete (VOD) playlist
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        ranges = await sdk.vas.get_video_play_list(tid, started - 1, ended)
        assert len(ranges) == 2, ranges  # the restart left a gap
        assert ranges[1]["start"] - ranges[0]["end"] >= 2
        days = await sdk.vas.get_video_date_list(tid, timezone=28_800)
        assert days == [((started + 28_800) // 86_400) * 86_400 - 28_800]
        detail = await sdk.vas.get_service_detail_info(tid)
        assert (detail["status"], detail["curOrderStorageDays"]) == (1, 3)
        address = await sdk.vas.get_video_play_address(tid, started - 1, ended)
        assert address["endflag"] is True
        async with httpx.AsyncClient() as http:
            playlist = (await http.get(address["url"])).text
        assert playlist.count("#EXT-X-DISCONTINUITY") == 1 and "#EXT-X-ENDLIST" in playlist
    # The camera's audio is in the recording (as AAC, what HLS players expect).
    probed = await asyncio.to_thread(ffprobe, address["url"])
    assert {s["codec_name"] for s in probed["streams"]} == {"h264", "aac"}
    # What the player decodes matches the recorded ranges, within one segment.
    recorded = sum(r["end"] - r["start"] for r in ranges)
    segment = int(playlist.split("#EXT-X-TARGETDURATION:")[1].split()[0])
    decoded = await asyncio.to_thread(decoded_seconds, address["url"])
    assert abs(decoded - recorded) <= segment, (decoded, recorded)


async def test_access_is_checked(world: World) -> None:
    tid = world.device.tid
    # A guest may look, until the owner's vendor unbinds them.
    guest = await asyncio.to_thread(world.new_user, "vas-guest", role="guest")
    async with app_sdk(world.cloud.url, guest) as sdk:
        assert (await sdk.vas.get_service_detail_info(tid))["status"] in (1, 2, 3)
        await world.avendor("DeleteBinding", AccessId=guest.access_id, Tid=tid, Role="guest")
        with pytest.raises(IVError) as unbound:
            await sdk.vas.get_video_play_list(tid, 0, 100)
        assert unbound.value.code == ErrorCode.IVASrvErr_dst_error_relation
        with pytest.raises(IVError) as old_token:  # the binding's own token died with it
            await sdk.vas.get_video_play_list(tid, 0, 100, token=guest.binding_token)
        assert old_token.value.code == ErrorCode.IVTermErr_msg_calling_check_token_error
    async with app_sdk(world.cloud.url, world.stranger) as sdk:
        with pytest.raises(IVError) as refused:
            await sdk.vas.get_video_play_list(tid, 0, 100)
        assert refused.value.code == ErrorCode.IVASrvErr_dst_error_relation
        with pytest.raises(IVError) as bad:
            await sdk.vas.get_service_detail_info(tid, token="usr_" + "x" * 40)
        assert bad.value.code == ErrorCode.IVTermErr_msg_calling_check_token_error
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        address = await sdk.vas.get_video_play_address(tid, 0, 100)
    url = address["url"]  # .../vas/hls/<exp>/<sig>/<tid>/<chn>/<window>.m3u8
    head, exp, sig, tail = (
        url.rsplit("/", 5)[0],
        *url.rsplit("/", 5)[1:3],
        "/".join(url.rsplit("/", 5)[3:]),
    )
    async with httpx.AsyncClient() as http:
        tampered = f"{head}/{exp}/{'0' * 64}/{tail}"
        assert (await http.get(tampered)).status_code == 403
        expired = f"{head}/1/{sig}/{tail}"
        assert (await http.get(expired)).status_code == 403
        assert (await http.get(url)).status_code == 200


async def test_no_recording_without_a_service(world: World, tmp_path: Path) -> None:
    device_info = world.devices[1]
    async with device_client(world.cloud.url, device_info) as device:
        media = DeviceMedia(device, video="testsrc:", audio="none")
        recorder = CloudRecorder(device, media, buffer_dir=tmp_path / "buf", segment_seconds=1)
        await recorder.start()
        status = await device.link.request("vas.status", {"chn": 0})
        assert status == {"chn": 0, "status": 3, "recording": False, "pkg_type": 1}
        # Buying a service tells the device at once (vas.changed): it starts recording.
        await world.avendor("CreateStorageService", PkgId="yc1m7d", Tid=device_info.tid)
        await recorder.wait_uploaded(1)
        assert recorder.recording
        await recorder.stop()
        await media.close()


async def test_uploads_fail_over_to_the_next_cloud_url(world: World, tmp_path: Path) -> None:
    """The first URL is dead (as after an instance dies): the link and the uploads both
    move to the next one."""
    device_info = world.devices[1]
    await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=device_info.tid)
    urls = ["http://127.0.0.1:9", world.cloud.url]
    async with device_client(urls, device_info) as device:
        media = DeviceMedia(device, video="testsrc:", audio="none")
        recorder = CloudRecorder(device, media, buffer_dir=tmp_path / "buf", segment_seconds=1)
        recorder.backoff = Backoff(base=0.05, cap=0.2)
        await recorder.start()
        async with asyncio.timeout(20):
            await recorder.wait_uploaded(2)
        assert recorder.upload_failures >= 1, "the dead URL was tried first"
        await recorder.stop()
        await media.close()


async def test_an_outage_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "cloud"
    cloud = await asyncio.to_thread(start_cloud, data)
    port = cloud.port
    world = await asyncio.to_thread(make_world, cloud, devices=1)
    tid = world.device.tid
    await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=tid)
    try:
        async with device_client(cloud.url, world.device) as device:
            media = DeviceMedia(device, video="testsrc:?fps=15", audio="none")
            recorder = CloudRecorder(device, media, buffer_dir=tmp_path / "buf", segment_seconds=1)
            await recorder.start()
            await recorder.wait_uploaded(1)
            await asyncio.to_thread(cloud.stop)  # the cloud is unreachable...
            await frames_pass(media, 6)  # ...for six seconds
            assert len(recorder.pending()) >= 2  # kept on the device meanwhile
            cloud = await asyncio.to_thread(start_cloud, data, port=port)
            await recorder.wait_uploaded(recorder.uploaded + 3)
            await recorder.stop(drain=True)
            await media.close()
        assert recorder.upload_failures > 0
        async with app_sdk(cloud.url, world.owner) as sdk:
            now = int(time.time()) + 1
            ranges = await sdk.vas.get_video_play_list(tid, now - 600, now)
        assert len(ranges) == 1, ranges  # no hole
        with sqlite3_rows(data, tid) as rows:
            starts = [r[0] for r in rows]
            assert len(starts) == len(set(starts))  # no duplicate
            assert all(b[0] == a[1] for a, b in itertools.pairwise(rows))  # no overlap
    finally:
        await asyncio.to_thread(cloud.stop)


class sqlite3_rows:
    def __init__(self, data: Path, tid: str) -> None:
        import sqlite3

        self.db = sqlite3.connect(data / "iotvideo.db")
        self.tid = tid

    def __enter__(self) -> list[tuple[int, int]]:
        return list(
            self.db.execute(
                "SELECT start_ms, end_ms FROM cloud_segments WHERE tid = ? ORDER BY start_ms",
                (self.tid,),
            )
        )

    def __exit__(self, *_exc: object) -> None:
        self.db.close()


async def test_cloud_player_cli_and_download(world: World, tmp_path: Path) -> None:
    tid = world.device.tid
    await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=tid)  # or renews
    started = int(time.time())
    async with device_client(world.cloud.url, world.device) as device:
        media = DeviceMedia(device, video="testsrc:?fps=15", audio="tone:440?codec=pcmu")
        recorder = CloudRecorder(device, media, buffer_dir=tmp_path / "buf", segment_seconds=2)
        await recorder.start()
        await recorder.event(1)
        await recorder.wait_uploaded(3)
        await recorder.stop(drain=True)
        await media.close()
    ended = int(time.time())
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        player = CloudPlayer(tid, started, ended, sdk=sdk, speed=0)
        await player.play()
        assert player.frames_decoded >= 45  # three seconds and more at 15 fps
        shot = await player.snapshot(tmp_path / "then.png")
        assert shot.startswith(b"\x89PNG")
    listed = await asyncio.to_thread(
        app, world, "cloud", "list", tid, "--start", str(started), "--end", str(ended)
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["list"]
    out = tmp_path / "clip.mp4"
    got = await asyncio.to_thread(
        app,
        world,
        "cloud",
        "download",
        tid,
        "--start",
        str(started),
        "--end",
        str(ended),
        "--out",
        str(out),
    )
    assert got.returncode == 0, got.stderr
    info = ffprobe(out)
    assert {s["codec_name"] for s in info["streams"]} == {"h264", "aac"}
    assert float(info["format"]["duration"]) >= 3
    address = await asyncio.to_thread(app, world, "cloud", "url", tid, "--start", str(started))
    assert json.loads(address.stdout)["url"].startswith("http://")
    shown = await asyncio.to_thread(
        app, world, "events", tid, "--start", str(started - 1), "--type-mask", "1"
    )
    (event,) = [json.loads(line) for line in shown.stdout.splitlines()]
    assert event["alarmType"] == 1 and event["imgUrl"] and event["thumbUrl"]
    bad = await asyncio.to_thread(app, world, "cloud", "list", tid, "--start", "yesterday")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
