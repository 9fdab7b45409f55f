"""The Redis bus survives Redis going away: /healthz says so meanwhile, and once Redis is
back the cloud reconnects by itself and messages flow again."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iotvideo.app import DeviceMessage, LinkStatus
from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.world import World, app_sdk, device_client, make_world
from tests.support import Cloud, LineWatcher, start_cloud


class Redis:
    """A private redis-server on a free loopback port, stopped and started by the test."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is installed on CI machines"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        # redis-server says so on stdout once it takes connections.
        self.watcher = LineWatcher(self.proc, self.proc.stdout)
        self.watcher.wait_for("Ready to accept connections", 10)

    def kill(self) -> None:
        assert self.proc is not None
        self.watcher.stop(signal.SIGKILL)  # and its stdout is closed


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


async def _health(cloud: Cloud, want: str) -> dict[str, str]:
    """Once the cloud has said the bus is lost (or back), what /healthz answers."""
    said = "Redis bus lost" if want == "down" else "Redis bus reconnected"
    await asyncio.to_thread(cloud.wait_for_log, said)
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.get(cloud.url + "/healthz")
    body = dict(answer.json())
    assert body["bus"] == want and answer.status_code == (200 if want == "ok" else 503), body
    return body


async def test_the_bus_reconnects_by_itself(redis: Redis, tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path / "data", bus=f"redis://127.0.0.1:{redis.port}/0")
    try:
        world: World = await asyncio.to_thread(make_world, cloud, devices=1)
        path = "ProWritable.nightMode.setVal"
        async with (
            device_client(cloud.url, world.device),
            app_sdk(cloud.url, world.owner) as sdk,
        ):
            assert (await sdk.message.write_property(world.device.tid, path, "1"))["stVal"] == 1
            redis.kill()
            assert await _health(cloud, "down") == {"status": "error", "db": "ok", "bus": "down"}
            # Meanwhile a request that needs the bus gets a code that says: retry shortly.
            with pytest.raises(IVError) as unavailable:
                await sdk.message.write_property(world.device.tid, path, "0")
            assert unavailable.value.code == ErrorCode.IVTermErr_msg_calling_no_srv_addr
            redis.start()
            await _health(cloud, "ok")
            # Subscriptions were made again: a write reaches the device and comes back.
            assert (await sdk.message.write_property(world.device.tid, path, "2"))["stVal"] == 2
        log = "".join(cloud.log)
        assert log.count("Redis bus lost") == 1 and "Redis bus reconnected" in log
        assert "Traceback" not in log
    finally:
        cloud.stop()


async def test_events_of_a_bus_outage_reach_an_app_that_stayed_online(
    redis: Redis, tmp_path: Path
) -> None:
    """An event raised while Redis is away is kept, but its push cannot go out (the device
    is told to retry). Once Redis is back the app, which never lost its own link, gets it,
    once: the device's retry pushes the kept event again, and the instance tells its apps
    to fetch what its bus lost (``resync``)."""
    cloud = start_cloud(tmp_path / "data", bus=f"redis://127.0.0.1:{redis.port}/0")
    try:
        world: World = await asyncio.to_thread(make_world, cloud, devices=1)
        async with (
            device_client(cloud.url, world.device) as dc,
            app_sdk(cloud.url, world.owner) as sdk,
        ):
            statuses: list[LinkStatus] = []
            sdk.add_status_listener(statuses.append)
            heard: list[int] = []
            got = asyncio.Condition()

            async def note(n: int) -> None:
                async with got:
                    heard.append(n)
                    got.notify_all()

            def on_message(message: DeviceMessage) -> None:
                if message.kind == "event":
                    asyncio.ensure_future(note(int(message.value["n"])))

            sdk.message.add_listener(on_message)

            async def until_heard(n: int) -> None:
                async with asyncio.timeout(30), got:
                    await got.wait_for(lambda: n in heard)

            await dc.event("motion", {"n": 0})
            await until_heard(0)
            redis.kill()
            await _health(cloud, "down")
            await dc.event("motion", {"n": 1})  # kept, not pushed: queued on the device
            assert len(dc.events) == 1
            redis.start()
            await _health(cloud, "ok")
            await dc.events_sent(timeout=30)
            await until_heard(1)
            await dc.event("motion", {"n": 2})
            await until_heard(2)
            assert sorted(heard) == [0, 1, 2]  # each once
            assert LinkStatus.OFFLINE not in statuses  # the app's link never dropped
    finally:
        cloud.stop()
