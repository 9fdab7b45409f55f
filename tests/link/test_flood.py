"""A flooding app costs the cloud a bounded amount and never the camera's session."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import websockets

from iotvideo.cloud.link.device_session import MAX_DEVICE_IN_FLIGHT
from iotvideo.cloud.link.session import MAX_IN_FLIGHT
from iotvideo.device import DeviceClient
from iotvideo.protocol.errors import ErrorCode
from tests.link.test_frames import Raw, app_raw
from tests.link.world import World, app_sdk, device_client, make_world
from tests.support import start_cloud

PROCESSING = ErrorCode.IVTermErr_msg_gdm_handle_processing
BUSY = ErrorCode.IVAckErr_DeviceBusy


@pytest.fixture(scope="module")
def world(cloud: object) -> World:
    return make_world(cloud, devices=1)  # type: ignore[arg-type]


async def flood(conn: Raw, tid: str, count: int) -> None:
    data = base64.b64encode(b"ping").decode()
    for i in range(count):
        payload = {"tid": tid, "data": data, "reply": True, "timeout": 30}
        await conn.send({"id": i + 1, "op": "data", "data": payload})


async def read_replies(conn: Raw, count: int, codes: Counter[int], seen: asyncio.Condition) -> None:
    """Read ``count`` replies of ``conn`` into ``codes``, telling ``seen`` of each."""
    for _ in range(count):
        frame = await conn.recv()
        while "id" not in frame:
            frame = await conn.recv()
        async with seen:
            codes[frame["code"]] += 1
            seen.notify_all()


async def test_a_flood_gets_codes_and_the_camera_stays_online(world: World) -> None:
    tid = world.device.tid
    held = asyncio.Event()

    seen = asyncio.Condition()  # a reply read, or a request reaching the camera
    taken = 0

    async def slow(data: bytes, topic: str) -> bytes:
        nonlocal taken
        async with seen:
            taken += 1
            seen.notify_all()
        await held.wait()
        return data

    def setup(device: DeviceClient) -> None:
        device.on_data(slow)

    sessions = MAX_DEVICE_IN_FLIGHT // MAX_IN_FLIGHT + 2  # together past the device's cap
    per_session = 200
    refused = sessions * (per_session - MAX_IN_FLIGHT)  # past each session's cap
    busy = sessions * MAX_IN_FLIGHT - MAX_DEVICE_IN_FLIGHT  # past the camera's cap
    codes: Counter[int] = Counter()
    async with AsyncExitStack() as stack:
        device = await stack.enter_async_context(
            device_client(world.cloud.url, world.device, setup)
        )
        conns = [await stack.enter_async_context(app_raw(world)) for _ in range(sessions)]
        readers = [asyncio.create_task(read_replies(c, per_session, codes, seen)) for c in conns]
        for reader in readers:
            stack.callback(reader.cancel)
        await asyncio.gather(*(flood(c, tid, per_session) for c in conns))
        # Everything past the caps is answered at once, while the camera holds the rest:
        # wait until every request is decided (the camera's share reached it).
        try:
            async with asyncio.timeout(30), seen:
                await seen.wait_for(
                    lambda: (
                        (codes[PROCESSING], codes[BUSY], taken)
                        == (refused, busy, MAX_DEVICE_IN_FLIGHT)
                    )
                )
        except TimeoutError:
            pytest.fail(f"replies {dict(codes)}, {taken} requests reached the camera")
        held.set()
        await asyncio.gather(*readers)
        # The camera was never disconnected...
        assert device.link.logins == 1 and device.link.online
        # ...it held exactly its share and answered it; the rest were told busy.
        assert codes == {PROCESSING: refused, BUSY: busy, 0: MAX_DEVICE_IN_FLIGHT}, codes
        assert taken == MAX_DEVICE_IN_FLIGHT
        # It serves the next app at once.
        async with app_sdk(world.cloud.url, world.owner) as sdk:
            answer = await sdk.message.send_data_to_device(tid, b"still here", expect_response=True)
            assert answer == b"still here"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_an_app_that_never_reads_costs_bounded_memory(world: World) -> None:
    """Requests to a camera that holds them, from an app that reads no reply, once grew
    the cloud by 190 MiB in 3.5 s: now the excess is refused and the app stops being read."""
    cloud, tid = world.cloud, world.device.tid
    held = asyncio.Event()

    async def hold(data: bytes, topic: str) -> bytes:
        await held.wait()
        return data

    payload = {"tid": tid, "data": base64.b64encode(b"x" * 600).decode(), "reply": True}
    async with (
        device_client(world.cloud.url, world.device, lambda d: d.on_data(hold)),
        app_raw(world) as conn,
    ):
        before = _rss_mib(cloud.proc.pid)
        sent = 0

        async def send_forever() -> None:
            nonlocal sent
            while True:
                sent += 1
                await conn.ws.send(json.dumps({"id": sent, "op": "data", "data": payload}))

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(4):
                await send_forever()
        after = _rss_mib(cloud.proc.pid)
        held.set()
    assert sent > 1000, "the flood was sent"
    assert after - before < 40, f"the cloud grew by {after - before:.0f} MiB ({sent} requests)"


async def test_a_peer_that_stops_reading_is_dropped(tmp_path: Path) -> None:
    """Its replies fill the socket buffers; once a send waits longer than
    IOTVIDEO_LINK_SEND_TIMEOUT the cloud drops the connection instead of pinning it."""
    env = {"IOTVIDEO_LINK_SEND_TIMEOUT": "2", "IOTVIDEO_LINK_RATE": "1000000"}
    cloud = await asyncio.to_thread(start_cloud, tmp_path / "data", env=env)
    try:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        url = cloud.url.replace("http", "ws") + "/link/app"
        # max_queue=1: the client library stops reading the socket as soon as one frame
        # waits, as an app that stopped reading would.
        async with websockets.connect(url, max_queue=1, max_size=None) as ws:
            await ws.recv()  # hello
            login = {"access_id": world.owner.access_id, "access_token": world.owner.token}
            await ws.send(json.dumps({"id": 1, "op": "login", "data": login}))
            read = {"tid": world.device.tid, "path": ""}
            with contextlib.suppress(websockets.ConnectionClosed):
                async with asyncio.timeout(30):
                    for i in range(2, 200_000):
                        await ws.send(json.dumps({"id": i, "op": "prop.read", "data": read}))
            async with asyncio.timeout(30):
                await ws.wait_closed()
    finally:
        cloud.stop()  # and its log is read to the end
    assert any("stopped reading; dropping it" in line for line in cloud.log)
