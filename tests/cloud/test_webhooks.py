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
from standardwebhooks.webhooks import Webhook

from iotvideo.cloud.db import Database
from iotvideo.cloud.keys import set_events_url
from tests.inproc import Clock, inproc_cloud
from tests.link.world import World, device_client, make_world


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
