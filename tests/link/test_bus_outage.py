"""The Redis bus survives Redis going away: /healthz says so meanwhile, and once Redis is
back the cloud reconnects by itself and messages flow again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iotvideo.app import LinkStatus
from iotvideo.cloud.bus import REDIS_POOL, RedisBus
from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.world import Heard, World, app_sdk, device_client, make_world
from tests.services import Redis
from tests.support import Cloud, start_cloud


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path)
    server.start()
    yield server
    server.remove()


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
            assert await _health(cloud, "down") == {
                "status": "error", "db": "ok", "bus": "down", "storage": "ok"
            }  # fmt: skip
            # Meanwhile a request that needs the bus gets a code that says: retry shortly.
            with pytest.raises(IVError) as unavailable:
                await sdk.message.write_property(world.device.tid, path, "0")
            assert unavailable.value.code == ErrorCode.IVTermErr_msg_calling_no_srv_addr
            async with httpx.AsyncClient(timeout=30) as http:
                whep = await http.post(
                    f"{cloud.url}/whep/{world.device.tid}",
                    content=b"v=0\r\n",
                    headers={
                        "Authorization": f"Bearer {world.owner.token}",
                        "Content-Type": "application/sdp",
                    },
                )
            assert whep.status_code == 503, whep.text
            assert whep.json()["code"] == ErrorCode.IVTermErr_msg_calling_no_srv_addr
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
            heard = Heard(sdk)

            await dc.event("motion", {"n": 0})
            await heard.until(0)
            redis.kill()
            await _health(cloud, "down")
            await dc.event("motion", {"n": 1})  # kept, not pushed: queued on the device
            assert len(dc.events) == 1
            redis.start()
            await _health(cloud, "ok")
            await dc.events_sent(timeout=30)
            await heard.until(1)
            await dc.event("motion", {"n": 2})
            await heard.until(2)
            assert sorted(heard.values) == [0, 1, 2]  # each once
            assert LinkStatus.OFFLINE not in statuses  # the app's link never dropped
    finally:
        cloud.stop()


async def test_a_burst_of_publishes_waits_for_pooled_connections(redis: Redis) -> None:
    """A login storm publishes one kick per login at once: beyond the pool's connections
    a publish waits for one (it was refused as "bus unavailable", 20004, sending the
    devices into backoff), and no more connections than the pool's are opened."""
    bus = RedisBus(redis.url)
    await bus.start()
    try:
        burst = REDIS_POOL * 5
        heard = await asyncio.gather(*(bus.publish(f"iv:burst:{n}", b"x") for n in range(burst)))
        assert heard == [0] * burst  # every publish went out (no one listens there)
        info = await bus._redis.info("clients")
        assert info["connected_clients"] <= REDIS_POOL + 1  # the pool and the listener
    finally:
        await bus.close()
