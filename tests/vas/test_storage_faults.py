"""The cloud's data directory full, then read-only (a tmpfs of its own): device uploads get
HTTP 503 with code 20004 and Retry-After, not a bare 500; /healthz names the storage; the
log has one line per outage and no traceback; what the device kept reaches the cloud once
the disk takes writes again."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from iotvideo.device.cloudrec import CloudRecorder
from iotvideo.device.media import DeviceMedia
from iotvideo.media.recorder import encode_picture
from iotvideo.protocol.errors import ErrorCode
from iotvideo.protocol.link import Backoff
from tests.link.world import World, device_client, eventually, make_world
from tests.support import Cloud, start_cloud
from tests.vas.test_upload_limits import signed

pytestmark = pytest.mark.postgres


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "data"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(path: Path) -> None:
    """Write ``path`` until the disk says it is full."""
    with path.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * (1 << 20))
            out.flush()


async def _remount(where: Path, mode: str) -> None:
    await asyncio.to_thread(
        subprocess.run, ["mount", "-o", f"remount,{mode}", str(where)], check=True
    )


def _jpeg() -> bytes:
    frame = av.VideoFrame.from_ndarray(np.full((90, 160, 3), 128, np.uint8), format="rgb24")
    return encode_picture(frame, "jpeg")


async def _health(cloud: Cloud) -> tuple[int, str]:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(cloud.url + "/healthz")
    return answer.status_code, answer.json()["storage"]


async def _post_event(world: World, picture: bytes) -> httpx.Response:
    target = f"/vas/device/event?chn=0&alarmType=1&start={int(time.time())}"
    headers = signed(world, 0, target, picture)
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(world.cloud.url + target, content=picture, headers=headers)


def _says_retry(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == ErrorCode.IVTermErr_msg_calling_no_srv_addr
    assert answer.headers["retry-after"].isdigit()


async def test_a_full_then_read_only_data_directory(
    small_disk: Path, pg_schema_url: str, tmp_path: Path
) -> None:
    cloud = start_cloud(small_disk, pg_schema_url)
    try:
        world: World = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = world.device.tid
        await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=tid)
        picture = await asyncio.to_thread(_jpeg)
        assert await _health(cloud) == (200, "ok")

        # Full.
        ballast = small_disk / "ballast"
        await asyncio.to_thread(_fill, ballast)
        assert await _health(cloud) == (503, "full")
        _says_retry(await _post_event(world, picture))
        assert not list((small_disk / "events").rglob("*.part")), "no partial file is left"
        async with device_client(cloud.url, world.device) as device:
            media = DeviceMedia(device, video="testsrc:?fps=15")
            recorder = CloudRecorder(
                device, media, buffer_dir=tmp_path / "buf", backoff=Backoff(0.05, 0.2)
            )
            await recorder.start()
            alarm = await recorder.event(1, picture=picture)

            async def refused() -> None:
                assert recorder.upload_failures >= 2

            await eventually(refused)
            ballast.unlink()
            async with asyncio.timeout(20):
                await recorder.drained()
            await recorder.stop()
        assert (small_disk / "events" / tid / f"{alarm}.jpg").read_bytes() == picture
        assert await _health(cloud) == (200, "ok")

        # Read-only.
        await _remount(small_disk, "ro")
        try:
            assert await _health(cloud) == (503, "read-only")
            _says_retry(await _post_event(world, picture))
        finally:
            await _remount(small_disk, "rw")
        assert (await _post_event(world, picture)).status_code == 200
        assert await _health(cloud) == (200, "ok")
        log = "".join(cloud.log)
        assert log.count("the data directory unavailable") == 2, log
        assert log.count("the data directory is back") == 2, log
        assert "Traceback" not in log, log
    finally:
        cloud.stop()


def test_a_read_only_probe_names_its_errno(tmp_path: Path) -> None:
    """/healthz's storage check on a directory it cannot write (gone): the errno's name."""
    from iotvideo.cloud.http_errors import storage_check

    assert storage_check(tmp_path) == "ok"
    assert storage_check(tmp_path / "gone") == errno.errorcode[errno.ENOENT]
