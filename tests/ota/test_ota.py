"""Firmware end to end: the vendor releases versions, the app asks what is new, the
device downloads, checks and installs, reporting progress; a corrupt file is refused."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iotvideo.device.client import DeviceClient, VersionInfo
from iotvideo.device.ota import FirmwareUpdater
from iotvideo.protocol.errors import ErrorCode, IVError
from tests.cloud.official import call, refused
from tests.link.world import Inbox, World, app_sdk, fast_backoff, make_world
from tests.support import Cloud, asnapshot, snapshot


@pytest.fixture(scope="module")
def world(sqlite_cloud: Cloud) -> World:
    return make_world(sqlite_cloud, devices=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A static HTTP server on loopback for firmware files: (folder, base URL)."""
    folder = tmp_path_factory.mktemp("firmware")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def release(
    world: World,
    files: tuple[Path, str],
    version: str,
    *,
    corrupt: bool = False,
    run: dict[str, object] | None = None,
    **publish: object,
) -> None:
    """Upload ``version`` (a file served by ``files``) and publish it with ``publish``
    (RunOtaVersion's fields), unless ``run`` is None."""
    folder, base = files
    body = f"firmware {version} ".encode() * 5000
    (folder / f"{version}.bin").write_bytes(body + (b"!" if corrupt else b""))
    call(
        world.api,
        "UploadOtaVersion",
        ProductId=world.product_id,
        OtaVersion=version,
        VersionUrl=f"{base}/{version}.bin",
        FileSize=len(body),
        Md5=hashlib.md5(body).hexdigest(),  # noqa: S324
        Contents={"En": f"Version {version}", "Cn": f"版本 {version}"},
    )
    if run is not None or publish:
        fields = (run or {}) | publish
        call(world.api, "RunOtaVersion", ProductId=world.product_id, OtaVersion=version, **fields)


async def test_firmware_end_to_end(world: World, files: tuple[Path, str], tmp_path: Path) -> None:
    device = DeviceClient(
        world.device.certificate,
        world.cloud.url,
        version=VersionInfo(swVer="1.0.1"),
        backoff=fast_backoff(),
    )
    installed: list[tuple[str, bytes]] = []
    updater = FirmwareUpdater(
        device, folder=tmp_path, install=lambda path, v: installed.append((v, path.read_bytes()))
    )
    await device.start()
    try:
        async with app_sdk(world.cloud.url, world.owner) as sdk:
            tid = world.device.tid
            # Uploaded but not published: nothing new.
            await asyncio.to_thread(release, world, files, "1.1.1", run=None)
            assert await sdk.device_mgr.query_new_version(tid) == {}
            await asyncio.to_thread(
                call, world.api, "RunOtaVersion", ProductId=world.product_id, OtaVersion="1.1.1"
            )
            offer = await sdk.device_mgr.query_new_version(tid, language="zh")
            assert offer["version"] == "1.1.1" and offer["upgDescs"] == "版本 1.1.1"
            assert offer["downUrl"].endswith("/1.1.1.bin")
            assert (await device.link.request("ota.query", {}))["version"] == "1.1.1"

            # The app starts the upgrade; progress arrives; the device comes back on 1.1.1.
            inbox = Inbox(sdk)
            answer = await sdk.message.take_action(
                tid, "Action._otaUpgrade", '{"ctlVal": 1}', timeout=30
            )
            assert answer == {"version": "1.1.1"}
            seen = []
            while not seen or seen[-1] != 100:
                message = await inbox.property("ProReadonly._otaUpgrade")
                seen.append(message.value["stVal"])
            assert seen[0] == 0 and len(seen) >= 3 and seen == sorted(seen)
            assert installed[0][0] == "1.1.1" and installed[0][1].startswith(b"firmware 1.1.1")
            described = await world.avendor(
                "DescribeDevices", ProductId=world.product_id, ReturnModel=True, Limit=10, Offset=0
            )
            assert described.Data[0].OtaVersion == "1.1.1"
            assert await sdk.device_mgr.query_new_version(tid) == {}  # up to date

            # A corrupt file is refused and the device stays on 1.1.1.
            await asyncio.to_thread(release, world, files, "1.2.1", corrupt=True, run={})
            with pytest.raises(IVError) as bad:
                await sdk.message.take_action(
                    tid, "Action._otaUpgrade", '{"ctlVal": 1}', timeout=30
                )
            assert bad.value.code == ErrorCode.IVTermErr_msg_gdm_handle_fail
            assert "corrupt" in bad.value.message
            assert device.version.swVer == "1.1.1" and len(installed) == 1
            await asyncio.to_thread(
                call, world.api, "DeleteOtaVersion", ProductId=world.product_id, OtaVersion="1.2.1"
            )

            # The vendor pushes an upgrade to this one device (UpgradeDevice).
            await asyncio.to_thread(release, world, files, "1.3.1", run=None)
            sent = await world.avendor("UpgradeDevice", Tid=tid, OtaVersion="1.3.1")
            assert '"Sent": true' in sent.Data
            await inbox.property("ProReadonly._otaUpgrade", stVal=100, timeout=15)
            await updater.wait()
            assert device.version.swVer == "1.3.1" and installed[-1][0] == "1.3.1"
    finally:
        await device.stop()


async def test_who_is_offered_what(world: World, files: tuple[Path, str]) -> None:
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        tid = world.device.tid
        await asyncio.to_thread(release, world, files, "2.0.1", OldVersions=["0.9.1"])
        assert await sdk.device_mgr.query_new_version(tid, "1.9.1") == {}  # not an old version
        offer = await sdk.device_mgr.query_new_version(tid, "0.9.1", "en")
        assert (offer["version"], offer["upgDescs"]) == ("2.0.1", "Version 2.0.1")
        # A gray release of 0% reaches nobody.
        await asyncio.to_thread(
            call,
            world.api,
            "RunOtaVersion",
            ProductId=world.product_id,
            OtaVersion="2.0.1",
            GrayValue=0,
        )
        gray = await sdk.device_mgr.query_new_version(tid, "0.9.1")
        assert gray.get("version") != "2.0.1"
        listed = await world.avendor(
            "DescribeOtaVersions", ProductId=world.product_id, OtaVersion="2.0.1"
        )
        (row,) = listed.Data
        assert (listed.TotalCount, row.PubStatus, row.GrayValue, row.ModifyTimes) == (1, 3, 0, 2)
        # A stranger may not ask about the device.
        async with app_sdk(world.cloud.url, world.stranger) as other:
            with pytest.raises(IVError) as no:
                await other.device_mgr.query_new_version(tid)
            assert no.value.code == ErrorCode.IVASrvErr_dst_error_relation


def test_release_refusals(world: World) -> None:
    upload = {
        "ProductId": world.product_id,
        "OtaVersion": "3.0.1",
        "VersionUrl": "http://127.0.0.1:1/f.bin",
        "FileSize": 10,
        "Md5": "0" * 32,
    }
    for bad in (
        {"OtaVersion": "3.0"},
        {"OtaVersion": "64.0.1"},
        {"Md5": "xyz"},
        {"VersionUrl": "ftp://x/f"},
        {"FileSize": 0},
    ):
        refused("InvalidParameterValue", call, world.api, "UploadOtaVersion", **(upload | bad))
    refused(
        "ResourceNotFound", call, world.api, "UploadOtaVersion", **(upload | {"ProductId": "nope"})
    )
    call(world.api, "UploadOtaVersion", **upload)
    refused("ResourceInUse", call, world.api, "UploadOtaVersion", **upload)
    refused(
        "ResourceNotFound",
        call,
        world.api,
        "RunOtaVersion",
        ProductId=world.product_id,
        OtaVersion="3.0.9",
    )
    refused(
        "ResourceNotFound",
        call,
        world.api,
        "UpgradeDevice",
        Tid=world.device.tid,
        OtaVersion="3.0.9",
    )
    call(world.api, "DeleteOtaVersion", ProductId=world.product_id, OtaVersion="3.0.1")
    listed = call(world.api, "DescribeOtaVersions", ProductId=world.product_id, OtaVersion="3.0.1")
    assert listed.TotalCount == 0


async def upgrade(world: World, tmp_path: Path, current: str, to: str) -> tuple[list[bytes], str]:
    """The device, on ``current``, upgraded to ``to`` by the vendor's UpgradeDevice: the
    files it installed and its version after."""
    device = DeviceClient(
        world.device.certificate,
        world.cloud.url,
        version=VersionInfo(swVer=current),
        backoff=fast_backoff(),
    )
    got: list[bytes] = []
    FirmwareUpdater(
        device, folder=tmp_path / "dl", install=lambda p, _v: got.append(p.read_bytes())
    )
    await device.start()
    try:
        async with app_sdk(world.cloud.url, world.owner) as sdk:
            inbox = Inbox(sdk)  # watching before the upgrade starts
            await world.avendor("UpgradeDevice", Tid=world.device.tid, OtaVersion=to)
            await inbox.property("ProReadonly._otaUpgrade", stVal=100, timeout=15)
        return got, device.version.swVer
    finally:
        await device.stop()


async def test_firmware_kept_by_the_cloud(world: World, tmp_path: Path) -> None:
    firmware = tmp_path / "cam-4.0.1.bin"
    firmware.write_bytes(b"kept by the cloud " * 4000)
    stored = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "iotvideo",
            "vendor",
            "firmware",
            str(firmware),
            "--data",
            str(world.cloud.data),
            "--base-url",
            world.cloud.url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    fields = json.loads(stored.stdout)
    assert fields["FileSize"] == firmware.stat().st_size
    assert fields["Md5"] == hashlib.md5(firmware.read_bytes()).hexdigest()  # noqa: S324
    await world.avendor(
        "UploadOtaVersion", ProductId=world.product_id, OtaVersion="4.0.1", **fields
    )
    got, now = await upgrade(world, tmp_path, "3.9.1", "4.0.1")
    assert got == [firmware.read_bytes()] and now == "4.0.1"
    # A name that is not one of the cloud's files is not served.
    async with httpx.AsyncClient() as http:
        missing = await http.get(world.cloud.url + "/firmware/" + "0" * 32 + "-x.bin")
    assert missing.status_code == 404


async def test_upload_path_then_release_then_upgrade(world: World, tmp_path: Path) -> None:
    """CreateUploadPath's URL takes the file; UploadOtaVersion checks it against the
    upload; the device downloads it from the cloud and installs it."""
    body = b"uploaded through a signed URL " * 3000
    md5 = hashlib.md5(body).hexdigest()  # noqa: S324
    put_url = (
        await world.avendor("CreateUploadPath", ProductId=world.product_id, FileName="cam.bin")
    ).Data
    version_url = put_url.split("?", 1)[0]
    assert version_url.startswith(world.cloud.url + "/firmware/") and version_url.endswith(
        "-cam.bin"
    )
    async with httpx.AsyncClient() as http:
        assert (await http.get(version_url)).status_code == 404  # nothing uploaded yet
        # The URL without its signature, or with an altered one, takes nothing.
        assert (await http.put(version_url, content=body)).status_code == 403
        assert (await http.put(put_url[:-1] + "0", content=body)).status_code == 403
        done = await http.put(put_url, content=body)
        assert done.status_code == 200 and done.json()["data"]["size"] == len(body)
        assert (await http.get(version_url)).content == body
    release = {"ProductId": world.product_id, "OtaVersion": "7.2.1", "VersionUrl": version_url}
    before = await asnapshot(world.cloud.db)
    for wrong in (
        {"FileSize": len(body) + 1, "Md5": md5},
        {"FileSize": len(body), "Md5": "0" * 32},
    ):
        await world.arefused("InvalidParameterValue", "UploadOtaVersion", **(release | wrong))
    missing = version_url.rsplit("/", 1)[0] + "/" + "1" * 32 + "-cam.bin"
    await world.arefused(
        "InvalidParameterValue",
        "UploadOtaVersion",
        **(release | {"VersionUrl": missing, "FileSize": len(body), "Md5": md5}),
    )
    assert await asnapshot(world.cloud.db) == before
    await world.avendor("UploadOtaVersion", **release, FileSize=len(body), Md5=md5)

    got, now = await upgrade(world, tmp_path, "7.1.1", "7.2.1")
    assert got == [body] and now == "7.2.1"
    await world.arefused("ResourceNotFound", "CreateUploadPath", ProductId="nope", FileName="a")
    await world.arefused(
        "InvalidParameterValue", "CreateUploadPath", ProductId=world.product_id, FileName="../a"
    )


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Serves one file with Range; the first answer breaks off after ``cut`` bytes."""

    body = b""
    cut: int | None = None
    asked: list[str | None] = []  # noqa: RUF012 - set per test

    def do_GET(self) -> None:
        wanted = self.headers.get("Range")
        type(self).asked.append(wanted)
        start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted else 0
        data = self.body[start:]
        self.send_response(206 if wanted else 200)
        self.send_header("Content-Length", str(len(data)))
        if wanted:
            self.send_header(
                "Content-Range", f"bytes {start}-{len(self.body) - 1}/{len(self.body)}"
            )
        self.end_headers()
        cut, type(self).cut = type(self).cut, None
        self.wfile.write(data if cut is None else data[:cut])
        self.close_connection = True

    def log_message(self, *_args: object) -> None:
        pass


async def test_a_broken_download_resumes_and_leaves_no_part_behind(
    world: World, tmp_path: Path
) -> None:
    body = bytes(range(256)) * (12 << 10)  # 3 MiB
    _Flaky.body, _Flaky.cut, _Flaky.asked = body, 1 << 20, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = tmp_path / "fw"
    installed: list[bytes] = []
    device = DeviceClient(world.device.certificate, world.cloud.url)
    updater = FirmwareUpdater(
        device, install=lambda path, _v: installed.append(path.read_bytes()), folder=folder
    )
    offer = {
        "version": "9.9.9",
        "url": f"http://127.0.0.1:{server.server_address[1]}/fw.bin",
        "size": len(body),
        "md5": hashlib.md5(body).hexdigest(),  # noqa: S324
    }
    try:
        with pytest.raises(IVError) as broke:
            await updater.upgrade(offer)
        assert "resumes" in broke.value.message
        (part,) = folder.glob("*.part")
        assert part.stat().st_size == 1 << 20
        stale = folder / f"firmware-{device.tid}-9.9.8.part"  # an older version's leftover
        stale.write_bytes(b"x" * 1000)
        assert await updater.upgrade(offer) == {"version": "9.9.9"}
        assert _Flaky.asked == [None, f"bytes={1 << 20}-"]  # the rest only
        assert installed == [body]
        assert sorted(p.name for p in folder.iterdir()) == [f"firmware-{device.tid}-9.9.9.bin"]
    finally:
        server.shutdown()
        server.server_close()


async def test_test_releases_disabling_notes_and_the_publication_history(
    world: World, files: tuple[Path, str]
) -> None:
    """RunTestOtaVersion offers a release to the named devices only; ModifyVerContent
    changes the notes an offer carries; DisableOtaVersion stops offering it (UpgradeDevice
    refuses it) until it is run again; DescribePubVersions lists what was published."""
    tid, pid = world.device.tid, world.product_id
    (other,) = (await world.avendor("CreateDevices", ProductId=pid, Number=1)).Data
    await asyncio.to_thread(release, world, files, "5.0.1")
    history = await world.avendor("DescribePubVersions", ProductId=pid)
    assert "5.0.1" not in [h.OtaVersion for h in history.Data]  # uploaded, not published
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        await world.avendor(
            "RunTestOtaVersion", ProductId=pid, OtaVersion="5.0.1", Tids=[other.Tid]
        )
        assert (await sdk.device_mgr.query_new_version(tid, "0.0.1")).get("version") != "5.0.1"
        await world.avendor(
            "RunTestOtaVersion", ProductId=pid, OtaVersion="5.0.1", Tids=[tid], Remark="beta"
        )
        offer = await sdk.device_mgr.query_new_version(tid, "0.0.1", "en")
        assert (offer["version"], offer["upgDescs"]) == ("5.0.1", "Version 5.0.1")
        await world.avendor(
            "ModifyVerContent", ProductId=pid, OtaVersion="5.0.1", Contents={"En": "Fixes"}
        )
        offer = await sdk.device_mgr.query_new_version(tid, "0.0.1", "en")
        assert offer["upgDescs"] == "Fixes"
        (row,) = (
            await world.avendor("DescribeOtaVersions", ProductId=pid, OtaVersion="5.0.1")
        ).Data
        assert (row.PubStatus, json.loads(row.Tids), row.Remark) == (2, [tid], "beta")
        assert row.ModifyTimes == 3

        await world.avendor("DisableOtaVersion", ProductId=pid, OtaVersion="5.0.1")
        assert (await sdk.device_mgr.query_new_version(tid, "0.0.1")).get("version") != "5.0.1"
        await asyncio.to_thread(
            refused,
            "FailedOperation",
            call,
            world.api,
            "UpgradeDevice",
            Tid=tid,
            OtaVersion="5.0.1",
        )
        (row,) = (
            await world.avendor("DescribeOtaVersions", ProductId=pid, OtaVersion="5.0.1")
        ).Data
        assert row.PubStatus == 4
        await world.avendor("RunOtaVersion", ProductId=pid, OtaVersion="5.0.1")
        assert (await sdk.device_mgr.query_new_version(tid, "0.0.1"))["version"] == "5.0.1"
    history = await world.avendor("DescribePubVersions", ProductId=pid)
    published = [h for h in history.Data if h.OtaVersion == "5.0.1"]
    assert len(published) == 1 and published[0].PublishTime > 0


def test_refusals_of_the_release_actions(world: World, sqlite_cloud: Cloud) -> None:
    pid, tid = world.product_id, world.device.tid
    missing = {"ProductId": pid, "OtaVersion": "9.9.9"}
    for action, extra in (
        ("RunTestOtaVersion", {"Tids": [tid]}),
        ("DisableOtaVersion", {}),
        ("ModifyVerContent", {"Remark": "x"}),
    ):
        refused("ResourceNotFound", call, world.api, action, **(missing | extra))
    refused("ResourceNotFound", call, world.api, "DescribePubVersions", ProductId="NOSUCHPROD")
    upload = {
        "ProductId": pid,
        "OtaVersion": "6.0.1",
        "VersionUrl": "http://127.0.0.1:1/f.bin",
        "FileSize": 10,
        "Md5": "0" * 32,
    }
    call(world.api, "UploadOtaVersion", **upload)
    before = snapshot(sqlite_cloud.db)
    release_of = {"ProductId": pid, "OtaVersion": "6.0.1"}
    refused("MissingParameter", call, world.api, "RunTestOtaVersion", **release_of)
    refused("InvalidParameterValue", call, world.api, "RunTestOtaVersion", **release_of, Tids=[])
    refused("ResourceNotFound", call, world.api, "RunTestOtaVersion", **release_of, Tids=["NOPE"])
    assert snapshot(sqlite_cloud.db) == before
    other_product = call(
        world.api, "CreateProduct", ProductModel="m", ProductName="other", ProductDescription="o"
    ).Data.ProductId
    stranger = call(world.api, "CreateDevices", ProductId=other_product, Number=1).Data[0].Tid
    before = snapshot(sqlite_cloud.db)
    refused(
        "InvalidParameterValue", call, world.api, "RunTestOtaVersion", **release_of, Tids=[stranger]
    )
    refused(
        "InvalidParameterValue",
        call,
        world.api,
        "ModifyVerContent",
        **release_of,
        Contents={"En": "x" * 2049},
    )
    assert snapshot(sqlite_cloud.db) == before
