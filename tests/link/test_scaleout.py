"""Two cloud processes on one PostgreSQL and one Redis: clients do not notice.

The device and the app sit on different instances; every operation crosses the Redis bus.
Then one instance is killed (SIGKILL) and the clients move to the other by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from iotvideo.device import DeviceClient, DeviceStatus
from iotvideo.protocol import tc3
from tests.link.test_frames import app_raw
from tests.link.world import Inbox, World, app_sdk, device_client, eventually, make_world
from tests.support import REDIS_URL, Cloud, error_code, start_cloud

pytestmark = pytest.mark.postgres


def _install(dc: DeviceClient) -> None:
    dc.on_write("nightMode")(lambda v: v)
    dc.on_action("cameraOn")(lambda v: {"cameraOn": v})
    dc.on_read("temperature")(lambda: 18.5)
    dc.on_data(lambda data, topic: data.upper())


async def test_device_and_app_on_different_instances(pair: tuple[Cloud, Cloud, World]) -> None:
    a, b, world = pair
    tid = world.device.tid
    async with (
        device_client(a.url, world.device, _install) as dc,
        app_sdk(b.url, world.owner) as sdk,
        app_sdk(a.url, world.guest) as guest,
    ):
        inbox = Inbox(guest)
        assert (await sdk.message.read_property(tid, "ProReadonly.temperature"))["stVal"] == 18.5
        after = await sdk.message.write_property(tid, "ProWritable.nightMode.setVal", "2")
        assert after["stVal"] == 2
        await inbox.property("ProWritable.nightMode", stVal=2)
        assert await sdk.message.take_action(tid, "Action.cameraOn", '{"ctlVal": 1}') == {
            "cameraOn": 1
        }
        assert await sdk.message.send_data_to_device(tid, b"abc", expect_response=True) == b"ABC"
        await sdk.message.add_property(tid, "ProUser.note", '"hi"')
        assert await guest.message.read_property(tid, "ProUser.note.val") == "hi"
        await dc.event("motion", {"zone": 1})
        assert (await inbox.next(lambda m: m.kind == "event")).value == {"zone": 1}
        # The vendor API on B reaches the device on A too.
        reply = await asyncio.to_thread(
            world.vendor,
            "ModifyDeviceAction",
            Tid=tid,
            Branch="Action.cameraOn",
            Value="0",
            IsNum=True,
        )
        assert reply.Data == '{"cameraOn": 0}'
        # An offline write made on B is delivered when the device logs in on A again.
        await dc.stop()
        await inbox.property("ProReadonly._online", stVal=0)
        stored = await sdk.message.write_property(tid, "ProWritable.nightMode.setVal", "1")
        assert (stored["setVal"], stored["stVal"]) == (1, 2)
        await dc.start()
        await inbox.property("ProWritable.nightMode", setVal=1, stVal=1)


async def test_a_write_whose_writer_leaves_at_once_reaches_the_device(
    pair: tuple[Cloud, Cloud, World],
) -> None:
    """A writer on B sends prop.write and closes its link 0-6 ms later, the device on A:
    each of 20 writes is stored, handed to the device and its answer recorded (setVal,
    stVal and the device agree). Before, most were stored and never delivered."""
    a, b, world = pair
    tid = world.device.tid
    applied: asyncio.Queue[int] = asyncio.Queue()

    def install(dc: DeviceClient) -> None:
        @dc.on_write("nightMode")
        def night(value: int) -> int:
            if value:  # not the default the device applies at login
                applied.put_nowait(value)
            return value

    rng = random.Random(27)
    world.use(b)
    async with device_client(a.url, world.device, install), app_sdk(a.url, world.guest) as guest:
        inbox = Inbox(guest)
        for i in range(20):
            value = 1 + i % 2
            async with app_raw(world) as conn:
                data = {"tid": tid, "path": "ProWritable.nightMode.setVal", "json": str(value)}
                await conn.send({"id": 99, "op": "prop.write", "data": data})
                # The fault injected: the writer goes 0-6 ms after its request.
                await asyncio.sleep(rng.uniform(0, 0.006))
            async with asyncio.timeout(10):
                assert await applied.get() == value
            await inbox.property("ProWritable.nightMode", setVal=value, stVal=value)
        state = await guest.message.read_property(tid, "ProWritable.nightMode")
        assert (state["setVal"], state["stVal"]) == (2, 2)
        assert applied.empty()


async def test_clients_move_when_an_instance_dies(pair: tuple[Cloud, Cloud, World]) -> None:
    a, b, world = pair
    tid = world.device.tid
    urls = [a.url, b.url]
    async with device_client(urls, world.device, _install) as dc, app_sdk(urls, world.owner) as sdk:
        assert (await sdk.message.read_property(tid, "ProReadonly.temperature"))["stVal"] == 18.5
        moved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        logins = dc.logins

        def on_status(status: DeviceStatus, _error: object) -> None:
            if status is DeviceStatus.ONLINE and dc.logins > logins and not moved.done():
                moved.set_result(None)

        dc.on_status = on_status
        a.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(a.proc.wait)
        async with asyncio.timeout(20):
            await moved

        async def works_again() -> None:
            try:
                result = await sdk.message.take_action(tid, "Action.cameraOn", '{"ctlVal": 1}')
            except Exception as exc:
                raise AssertionError(str(exc)) from exc
            assert result == {"cameraOn": 1}

        await eventually(works_again, timeout=20)
        world.use(b)
        described = await asyncio.to_thread(world.vendor, "DescribeDevice", Tid=tid)
        assert described.Data.Online == 1


async def test_revocations_and_kicks_cross_instances(pair: tuple[Cloud, Cloud, World]) -> None:
    a, b, world = pair
    tid = world.device.tid
    world.use(b)  # vendor calls on B; device and app on A
    async with device_client(a.url, world.device) as dc, app_sdk(a.url, world.guest) as sdk:
        cut: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        sdk.add_push_handler("unsubscribed", lambda push: cut.done() or cut.set_result(push.data))
        await world.avendor("DeleteBinding", AccessId=world.guest.access_id, Tid=tid, Role="guest")
        async with asyncio.timeout(10):
            assert (await cut)["code"] == 20014
        kicked: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_status(_status: DeviceStatus, error: object) -> None:
            if getattr(error, "code", None) == 20011 and not kicked.done():
                kicked.set_result(None)

        dc.on_status = on_status
        await world.avendor("DisableDevice", Tids=[tid])
        async with asyncio.timeout(10):
            await kicked


def test_a_request_used_on_one_instance_is_refused_as_a_replay_on_another(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """Instances share the ledger of used signatures (in Redis). Window 0: no repeat."""
    env = {"IOTVIDEO_SIGNATURE_REPEAT_WINDOW": "0"}
    a = start_cloud(tmp_path / "a", pg_schema_url, bus=REDIS_URL, env=env)
    b = start_cloud(tmp_path / "b", pg_schema_url, bus=REDIS_URL, env=env)
    try:
        key = a.new_key()
        payload = json.dumps({"Limit": 10, "Offset": 0}).encode()
        headers = tc3.sign_request(
            *key, action="DescribeProducts", payload=payload, host=a.endpoint,
            timestamp=int(time.time()),
        )  # fmt: skip
        first = httpx.post(a.url + "/", content=payload, headers=headers, timeout=30)
        assert error_code(first) is None
        replayed = httpx.post(b.url + "/", content=payload, headers=headers, timeout=30)
        assert error_code(replayed) == "AuthFailure.SignatureExpire"
        swapped = {**headers, "X-TC-Action": "DescribeOtaVersions"}
        again = httpx.post(b.url + "/", content=payload, headers=swapped, timeout=30)
        assert error_code(again) == "AuthFailure.SignatureFailure"
    finally:
        a.stop()
        b.stop()


def _device_sessions(cloud: Cloud) -> int:
    text = httpx.get(cloud.url + "/metrics", timeout=10).text
    match = re.search(r'^iotvideo_link_sessions\{peer="device"\} (\S+)$', text, re.M)
    assert match, text
    return int(float(match[1]))


async def test_the_clients_of_a_dead_instance_spread_over_the_others(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """Clients given every instance's URL start on the first; when it dies each moves on to
    a random one of the others, not all of them to the same next one (which took all the
    load of the dead instance while the others idled)."""
    clouds = [start_cloud(tmp_path / name, pg_schema_url, bus=REDIS_URL) for name in "abc"]
    try:
        world = await asyncio.to_thread(make_world, clouds[0], devices=24)
        urls = [c.url for c in clouds]
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(device_client(urls, device))
                for device in world.devices
            ]
            assert _device_sessions(clouds[0]) == len(clients)
            moved = asyncio.Event()
            for dc in clients:
                dc.on_status = lambda *_: moved.set()
            clouds[0].proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(clouds[0].proc.wait)
            async with asyncio.timeout(30):
                while not all(d.logins == 2 and d.status is DeviceStatus.ONLINE for d in clients):
                    moved.clear()
                    await moved.wait()
            spread = [await asyncio.to_thread(_device_sessions, c) for c in clouds[1:]]
            assert sum(spread) == len(clients)
            assert min(spread) > 0, spread  # all on one: 2 chances in 2^24
    finally:
        for cloud in clouds:
            cloud.stop()
