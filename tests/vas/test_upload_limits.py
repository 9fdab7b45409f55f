"""What the cloud's HTTP endpoints do with hostile input: authenticated from the headers
before any body is read, bodies read up to a cap, bad numbers and JSON refused with 4xx,
events only under a plan, and refused requests store nothing."""

from __future__ import annotations

import json
import select
import socket
import time

import httpx
import pytest

from iotvideo.protocol import link
from iotvideo.protocol.certificate import DeviceCertificate
from iotvideo.protocol.errors import ErrorCode
from iotvideo.protocol.vas import upload_message
from tests.link.world import World, make_world
from tests.support import Cloud, asnapshot


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> World:
    return make_world(cloud, devices=2)


def head_only(cloud: Cloud, head: str, timeout: float = 10) -> bytes:
    """Send a request's head and nothing of its body; return what the cloud answers."""
    with socket.create_connection(("127.0.0.1", cloud.port), timeout=timeout) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        return conn.recv(4096)


def signed(world: World, index: int, target: str, body: bytes) -> dict[str, str]:
    device = world.devices[index]
    cert = DeviceCertificate.parse(device.certificate)
    now = int(time.time())
    message = upload_message(device.tid, "POST", target, body, now)
    return {
        "x-iv-tid": device.tid,
        "x-iv-time": str(now),
        "x-iv-signature": link.sign(cert.private_key, message),
    }


def test_unsigned_uploads_are_refused_before_their_body_is_read(world: World) -> None:
    cloud = world.cloud
    # A chunked upload with no signature: answered at once, with no byte of the body sent.
    answer = head_only(
        cloud,
        f"POST /vas/device/segment?chn=0&start=1&end=2 HTTP/1.1\nHost: {cloud.endpoint}\n"
        "Transfer-Encoding: chunked\n",
    )
    assert answer.startswith(b"HTTP/1.1 401")
    # A signed-looking upload of a known device declaring 96 MiB: refused by its length.
    tid = world.device.tid
    answer = head_only(
        cloud,
        f"POST /vas/device/segment?chn=0&start=1&end=2 HTTP/1.1\nHost: {cloud.endpoint}\n"
        f"X-IV-Tid: {tid}\nX-IV-Time: {int(time.time())}\nX-IV-Signature: AAAA\n"
        f"Content-Length: {96 << 20}\n",
    )
    assert answer.startswith(b"HTTP/1.1 413")
    # An app's JSON request with a bad token: answered before its body.
    answer = head_only(
        cloud,
        f"POST /vas/events/delete HTTP/1.1\nHost: {cloud.endpoint}\n"
        "Authorization: Bearer usr_nope\nContent-Length: 1000\n",
    )
    assert answer.startswith(b"HTTP/1.1 401")


def test_a_chunked_body_past_the_cap_is_cut_off(world: World) -> None:
    """A known device's Tid (not secret) with a chunked body longer than any segment: the
    cloud answers 413 once the cap (32 MiB) is passed, long before the 96 MiB end."""
    cloud, tid = world.cloud, world.device.tid
    chunk = b"100000\r\n" + b"\0" * (1 << 20) + b"\r\n"  # 1 MiB, chunked framing
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", cloud.port), timeout=10) as conn:
        conn.sendall(
            f"POST /vas/device/segment?chn=0&start=1&end=2 HTTP/1.1\r\nHost: {cloud.endpoint}"
            f"\r\nX-IV-Tid: {tid}\r\nX-IV-Time: {int(time.time())}\r\nX-IV-Signature: AAAA"
            "\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        try:
            while sent < 96 << 20 and not answer:
                conn.sendall(chunk)
                sent += 1 << 20
                if select.select([conn], [], [], 0)[0]:
                    answer = conn.recv(4096)
            answer = answer or conn.recv(4096)
        except OSError:  # reset while sending: the cloud stopped reading
            answer = answer or b"reset"
    assert answer.startswith(b"HTTP/1.1 413") or answer == b"reset", answer
    assert sent < 64 << 20, f"the cloud read {sent >> 20} MiB"


async def test_bad_numbers_and_json_get_400_and_change_nothing(world: World) -> None:
    cloud, owner, tid = world.cloud, world.owner, world.device.tid
    before = await asnapshot(cloud.db)
    auth = {"authorization": f"Bearer {owner.token}"}
    async with httpx.AsyncClient(base_url=cloud.url, timeout=30) as http:
        for query in ("start=1e400&end=2", "start=nan&end=2", f"start={1 << 60}&end=2"):
            r = await http.get(f"/vas/playlist?deviceId={tid}&{query}", headers=auth)
            assert r.status_code == 400 and r.json()["code"] == 20143, (query, r.text)
        deep = ("[" * 30_000 + "]" * 30_000).encode()  # under the cap, past recursion
        for body in (deep, b"{", b'{"deviceId": 1, "eventIds": []}', b'"x"', b"\xff"):
            r = await http.post("/vas/events/delete", content=body, headers=auth)
            assert r.status_code == 400 and r.json()["code"] == 20143, (body[:20], r.text)
        huge = json.dumps({"deviceId": tid, "eventIds": ["x" * 60] * 5000}).encode()
        r = await http.post("/vas/events/delete", content=huge, headers=auth)
        assert r.status_code == 413
    assert await asnapshot(cloud.db) == before


async def test_events_need_a_plan_and_a_refused_event_leaves_no_picture(world: World) -> None:
    cloud, index = world.cloud, 1  # the second device has no cloud-storage service
    tid = world.devices[index].tid
    target = "/vas/device/event?chn=0&alarmType=1&firstAlarmType=1&start=1&end=2&id=ev1"
    picture = bytes.fromhex("ffd8ffe000104a464946") + b"\0" * 100
    before = await asnapshot(cloud.db)
    async with httpx.AsyncClient(base_url=cloud.url, timeout=30) as http:
        r = await http.post(target, content=picture, headers=signed(world, index, target, picture))
    assert r.status_code == 403 and r.json()["code"] == ErrorCode.IVASrvErr_dst_error_relation
    assert await asnapshot(cloud.db) == before
    assert not (cloud.data / "events" / tid).exists()


async def test_deleting_a_device_deletes_its_recordings_and_pictures(world: World) -> None:
    import asyncio

    own = await asyncio.to_thread(make_world, world.cloud, devices=1)
    tid = own.device.tid
    await own.avendor("CreateStorageService", PkgId="yc1m3d", Tid=tid)
    now_ms = int(time.time() * 1000)
    segment = f"/vas/device/segment?chn=0&start={now_ms - 2000}&end={now_ms}"
    event = f"/vas/device/event?chn=0&alarmType=1&start={now_ms // 1000}&id=gone1"
    picture = _jpeg()
    async with httpx.AsyncClient(base_url=own.cloud.url, timeout=30) as http:
        for target, body in ((segment, b"\x47" * 188), (event, picture)):
            r = await http.post(target, content=body, headers=signed(own, 0, target, body))
            assert r.status_code == 200, r.text
    folders = [own.cloud.data / "vas" / tid, own.cloud.data / "events" / tid]
    assert all(any(f.iterdir()) for f in folders)
    await own.avendor("DeleteDevice", Tids=[tid])
    assert not any(f.exists() for f in folders)


def _jpeg(shade: int = 200) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 36), (shade, 30, 30)).save(out, "JPEG")
    return out.getvalue()


async def test_event_ids_are_the_devices_own(world: World) -> None:
    """Two devices may use the same event id: both events are kept, each with its picture."""
    await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=world.devices[0].tid)
    await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=world.devices[1].tid)
    now = int(time.time())
    target = f"/vas/device/event?chn=0&alarmType=1&start={now}&id=same1"
    pictures = {}
    async with httpx.AsyncClient(base_url=world.cloud.url, timeout=30) as http:
        for index in (0, 1):
            picture = _jpeg(shade=40 + 150 * index)
            r = await http.post(
                target, content=picture, headers=signed(world, index, target, picture)
            )
            assert r.json()["data"] == {"alarmId": "same1", "duplicate": False}, r.text
            pictures[world.devices[index].tid] = picture
        again = await http.post(target, content=picture, headers=signed(world, 1, target, picture))
        assert again.json()["data"]["duplicate"] is True
        for tid, picture in pictures.items():
            auth = {"authorization": f"Bearer {world.owner.token}"}
            if tid != world.device.tid:
                continue  # the owner is bound to the first device only
            listed = (
                await http.get(
                    f"/vas/events?deviceId={tid}&startTime={now - 1}&endTime={now + 1}",
                    headers=auth,
                )
            ).json()["data"]
            (event,) = listed["list"]
            got = await http.get(listed["imgUrlPrefix"] + event["imgUrlSuffix"])
            assert got.content == picture
