"""The vendor's notification webhook: what happens to its devices arrives signed (checked
with the official Standard Webhooks library), is retried until taken, and survives a
cloud restart; the send-data webhook is signed too."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from standardwebhooks.webhooks import Webhook

from iotvideo.cloud.db import Database
from iotvideo.cloud.keys import set_events_url
from tests.inproc import Clock, inproc_cloud
from tests.link.world import World, device_client, eventually, make_world
from tests.support import asnapshot


@dataclass
class Receiver:
    """A vendor backend: records what arrives; answers 500 to the first ``fail`` posts."""

    url: str = ""
    fail: int = 0
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None
    arrived: asyncio.Queue[tuple[dict[str, str], bytes]] | None = None
    #: Every post, taken or not.
    tried: asyncio.Queue[str] | None = None

    def taken(self, headers: dict[str, str], body: bytes) -> int:
        self.posts.append((headers, body))
        if self.loop is not None and self.tried is not None:
            self.loop.call_soon_threadsafe(self.tried.put_nowait, headers["webhook-id"])
        if self.fail > 0:
            self.fail -= 1
            return 500
        if self.loop is not None and self.arrived is not None:
            self.loop.call_soon_threadsafe(self.arrived.put_nowait, (headers, body))
        return 204

    async def next(self, kind: str, timeout: float = 15) -> dict[str, Any]:
        """The next notification of ``kind`` taken (others are skipped)."""
        assert self.arrived is not None
        async with asyncio.timeout(timeout):
            while True:
                headers, body = await self.arrived.get()
                message = json.loads(body)
                if message["type"] == kind:
                    return {"headers": headers, "body": body, **message}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """The vendor's notification endpoint, reporting to the test's event loop."""
    hook = Receiver(loop=asyncio.get_running_loop(), arrived=asyncio.Queue())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status = hook.taken({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/notify"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


async def events_to(world: World, url: str) -> str:
    db = Database(world.cloud.db)
    try:
        return await set_events_url(db, world.vendor_id, url)
    finally:
        await db.close()


async def test_device_notifications_arrive_signed_and_retried(
    tmp_path: Path, receiver: Receiver
) -> None:
    clock = Clock()
    async with inproc_cloud(tmp_path, clock) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = world.device.tid
        secret = await events_to(world, receiver.url)
        assert secret.startswith("whsec_")
        verify = Webhook(secret)
        async with device_client(cloud.url, world.device) as device:
            online = await receiver.next("device.online")
            assert online["data"] == {"tid": tid}
            assert verify.verify(online["body"], online["headers"])["type"] == "device.online"
            await device.event("motion", {"zone": 2})
            event = await receiver.next("device.event")
            assert event["data"]["topic"] == "motion" and event["data"]["value"] == {"zone": 2}
            verify.verify(event["body"], event["headers"])
            # An upgraded device reports its new version: the firmware result.
            await device.report("ProConst._versionInfo", {"swVer": "9.9.9"})
            upgraded = await receiver.next("ota.result")
            assert upgraded["data"] == {"tid": tid, "version": "9.9.9"}
        offline = await receiver.next("device.offline")
        assert offline["data"] == {"tid": tid}
        # A forged or replayed signature does not verify.
        tampered = offline["body"].replace(tid.encode(), b"X" * len(tid))
        with pytest.raises(Exception, match=r"[Ss]ignature"):
            verify.verify(tampered, offline["headers"])

        # The backend fails twice: the same message comes again (same webhook-id) until
        # it is taken, with backoff (the test's clock jumps over the waits).
        receiver.fail = 2
        receiver.tried = asyncio.Queue()
        async with device_client(cloud.url, world.device):
            tries = []
            for _ in range(2):
                async with asyncio.timeout(15):
                    tries.append(await receiver.tried.get())
                # Not delivered yet: the metrics say one is pending.
                async with httpx.AsyncClient() as http:
                    scraped = (await http.get(f"{cloud.url}/metrics")).text
                assert "iotvideo_webhook_pending 1.0" in scraped
                clock.offset += 10
            again = await receiver.next("device.online")
        assert tries == [again["headers"]["webhook-id"]] * 2


async def test_notifications_wait_out_a_down_backend_and_a_cloud_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    clock = Clock()
    async with inproc_cloud(tmp_path, clock) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        await events_to(world, "http://127.0.0.1:9/nobody-listens")  # the backend is down
        async with device_client(cloud.url, world.device):
            pass  # online, then offline: two notifications queued
    async with inproc_cloud(tmp_path, clock) as cloud:  # a new process on the same database
        world.cloud = cloud
        await events_to(world, receiver.url)  # the backend is back
        clock.offset += 3600  # past any backoff
        kinds = [
            (await receiver.next(kind))["type"] for kind in ("device.online", "device.offline")
        ]
        assert kinds == ["device.online", "device.offline"]


async def test_the_send_data_webhook_is_signed(tmp_path: Path, receiver: Receiver) -> None:
    from iotvideo.cloud.keys import set_webhook
    from tests.link.world import app_sdk

    async with inproc_cloud(tmp_path, Clock()) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        db = Database(cloud.db)
        try:
            await set_webhook(db, world.vendor_id, receiver.url)
        finally:
            await db.close()
        secret = await events_to(world, "")  # the same secret signs both
        async with app_sdk(cloud.url, world.owner) as sdk:
            await sdk.message.send_data_to_server("/orders", b"{}")
        headers, body = receiver.posts[-1]
        assert Webhook(secret).verify(body, headers)["Url"] == "/orders"


REDIS = "redis://127.0.0.1:6379/0"


def _forwarded(receiver: Receiver, topic: str) -> list[dict[str, Any]]:
    """The messages of the product's queue ``topic`` taken so far (not the vendor's own
    notifications, which carry no topic)."""
    return [
        json.loads(body)
        for headers, body in list(receiver.posts)
        if headers.get("x-iotvideo-topic") == topic
    ]


async def test_message_queues_forward_to_a_stream_and_a_webhook_across_a_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    """SetMessageQueue: type 2 adds a device's online state, reports and events to a
    Redis Stream; type 1 posts them to the vendor's webhook with the topic, and what could
    not be delivered before a restart is delivered after it. MsgType picks the kinds."""
    clock = Clock()
    redis = aioredis.from_url(REDIS)
    async with inproc_cloud(tmp_path, clock, bus=REDIS) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        pid, tid = world.product_id, world.device.tid
        key = f"iotvideo:mq:{world.vendor_id}:cams"
        await redis.delete(key)
        await world.avendor(
            "SetMessageQueue",
            ProductId=pid,
            MsgQueueType=2,
            MsgType="0,3,5",
            Topic="cams",
            Instance="kafka-1",
            MsgRegion="local",
        )
        kept = (await world.avendor("DescribeMessageQueue", ProductId=pid)).Data
        assert (kept.MsgQueueType, kept.MsgType, kept.Topic, kept.Instance) == (
            2,
            "0,3,5",
            "cams",
            "kafka-1",
        )
        async with device_client(cloud.url, world.device) as device:
            await device.report("ProReadonly.temperature", 19.5)
            await device.event("motion", {"zone": 1})
        await world.avendor(
            "ModifyDeviceProperty", Tid=tid, Branch="ProWritable.nightMode", Value="1", IsNum=True
        )

        async def in_stream() -> list[dict[str, Any]]:
            entries = await redis.xrange(key)
            return [{"type": f[b"type"].decode(), **json.loads(f[b"data"])} for _id, f in entries]

        async def four() -> None:
            assert len(await in_stream()) >= 4

        await eventually(four)
        got = {
            m["type"] + ":" + str(m.get("path", m.get("topic", m.get("online")))): m
            for m in await in_stream()
        }
        # (Sent a few at a time: the order within a burst is not kept.)
        assert sorted(got) == [
            "device.event:motion",
            "device.offline:0",
            "device.online:1",
            "device.property:ProReadonly.temperature",
        ], "ProWritable changes (MsgType 2) are not asked for"
        assert got["device.property:ProReadonly.temperature"]["value"]["stVal"] == 19.5
        assert got["device.event:motion"]["value"] == {"zone": 1}
        assert all(m["tid"] == tid and m["productId"] == pid for m in got.values())

        # Type 1: the vendor's webhook, which is down for now.
        await events_to(world, "http://127.0.0.1:9/nobody-listens")
        await world.avendor(
            "SetMessageQueue", ProductId=pid, MsgQueueType=1, MsgType="0,3,5", Topic="hook"
        )
        async with device_client(cloud.url, world.device) as device:
            await device.report("ProReadonly.temperature", 20.5)
            await device.event("motion", {"zone": 2})
    async with inproc_cloud(tmp_path, clock, bus=REDIS) as cloud:  # restarted
        world.use(cloud)
        await events_to(world, receiver.url)  # the backend is back
        clock.offset += 3600  # past any backoff

        async def delivered() -> None:
            kinds = sorted((m["type"], m["data"]["msgType"]) for m in _forwarded(receiver, "hook"))
            assert kinds == [
                ("device.event", 5),
                ("device.offline", 0),
                ("device.online", 0),
                ("device.property", 3),
            ]

        await eventually(delivered, timeout=20)
        assert len(await in_stream()) == 4, "a type 1 queue adds nothing to the stream"
        clock.offset -= 3600  # back to the vendor client's time
        await world.avendor("DeleteMessageQueue", ProductId=pid)
        await world.arefused("ResourceNotFound", "DescribeMessageQueue", ProductId=pid)
    await redis.delete(key)
    await redis.aclose()


async def test_message_queue_refusals(tmp_path: Path) -> None:
    async with inproc_cloud(tmp_path, Clock()) as cloud:  # no Redis: no stream queues
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        pid = world.product_id
        before = await asnapshot(cloud.db)
        good = {"ProductId": pid, "MsgQueueType": 1, "MsgType": "0", "Topic": "t"}
        await world.arefused("FailedOperation", "SetMessageQueue", **good)  # no webhook URL
        await world.arefused(
            "UnsupportedOperation", "SetMessageQueue", **(good | {"MsgQueueType": 2})
        )
        for bad in (
            {"MsgQueueType": 3},
            {"MsgType": "0,32"},
            {"MsgType": "a"},
            {"MsgType": ""},
            {"Topic": "x" * 33},
            {"Topic": "a b"},
        ):
            await world.arefused("InvalidParameterValue", "SetMessageQueue", **(good | bad))
        await world.arefused("ResourceNotFound", "SetMessageQueue", **(good | {"ProductId": "no"}))
        await world.arefused("ResourceNotFound", "DescribeMessageQueue", ProductId=pid)
        await world.arefused("ResourceNotFound", "DeleteMessageQueue", ProductId=pid)
        assert await asnapshot(cloud.db) == before
