"""Device events are sent at least once and kept once: queued until acknowledged (across
an outage and a restart of the device), repeats dropped by id, losses counted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import device_events
from iotvideo.cloud.link.messaging import Messaging
from iotvideo.device import DeviceClient, DeviceStatus
from iotvideo.device.events import EventQueue
from tests.inproc import Clock, inproc_cloud
from tests.link.world import Heard, World, app_sdk, device_client, fast_backoff, make_world
from tests.support import Cloud, start_cloud


def test_the_queue_survives_a_restart_and_counts_what_it_drops(tmp_path: Path) -> None:
    queue = EventQueue(tmp_path, limit=3)
    for n in range(5):
        queue.add("motion", {"n": n}, 1000 + n)
    assert queue.lost == 2
    again = EventQueue(tmp_path, limit=3)  # the device restarted
    assert [e.value for e in (again.oldest(),)] == [{"n": 2}]
    first = again.oldest()
    assert first is not None
    again.done(first)
    assert len(EventQueue(tmp_path, limit=3)) == 2


async def test_a_repeat_is_dropped_by_its_id(tmp_path: Path) -> None:
    cloud = await asyncio.to_thread(start_cloud, tmp_path / "data")
    try:
        world: World = await asyncio.to_thread(make_world, cloud, devices=1)
        async with (
            device_client(cloud.url, world.device) as device,
            app_sdk(cloud.url, world.owner) as sdk,
        ):
            got: asyncio.Queue[object] = asyncio.Queue()
            sdk.message.add_listener(
                lambda m: got.put_nowait(m.value) if m.kind == "event" else None
            )
            event = {"path": "Event.motion", "value": {"n": 1}, "id": "a1b2c3"}
            assert await device.link.request("event", event) == {}
            assert await device.link.request("event", event) == {"duplicate": True}
            assert await asyncio.wait_for(got.get(), 10) == {"n": 1}
            listed = await sdk.request("event.since", {"after": 0})
            assert [e["value"] for e in listed["events"]] == [{"n": 1}]
    finally:
        cloud.stop()


async def test_a_late_repeat_is_renumbered_and_heard_once(cloud: Cloud) -> None:
    """A repeat may come long after its event was kept (the instance that kept it died
    before its push, and the device was away meanwhile): it gets a seq after the events
    kept since, so that an app catching up from past its first seq gets it, and an app
    that heard it already does not hear it twice."""
    world: World = await asyncio.to_thread(make_world, cloud, devices=1)
    async with (
        device_client(cloud.url, world.device) as device,
        app_sdk(cloud.url, world.owner) as sdk,
    ):
        got: asyncio.Queue[object] = asyncio.Queue()
        sdk.message.add_listener(lambda m: got.put_nowait(m.value) if m.kind == "event" else None)

        async def send(n: int, event_id: str) -> dict[str, Any]:
            event = {"path": "Event.motion", "value": {"n": n}, "id": event_id}
            reply: dict[str, Any] = await device.link.request("event", event)
            return reply

        assert await send(1, "a1") == {}
        assert await send(2, "b1") == {}
        first = (await sdk.request("event.since", {"after": 0}))["events"]
        assert [(e["value"], e["id"]) for e in first] == [({"n": 1}, "a1"), ({"n": 2}, "b1")]
        assert await send(1, "a1") == {"duplicate": True}
        assert await send(3, "c1") == {}
        # Pushed in order: once the third is heard, the repeat's push was handled.
        heard = [await asyncio.wait_for(got.get(), 10) for _ in range(3)]
        assert heard == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert got.empty()
        after_b = (await sdk.request("event.since", {"after": first[1]["seq"]}))["events"]
        assert [(e["value"], e["id"]) for e in after_b] == [({"n": 1}, "a1"), ({"n": 3}, "c1")]
        assert after_b[0]["t"] == first[0]["t"]  # the event's time is kept
        kept = (await sdk.request("event.since", {"after": 0}))["events"]
        assert [e["id"] for e in kept] == ["b1", "a1", "c1"]  # once each


async def test_events_raised_during_an_outage_arrive_once_after_it(tmp_path: Path) -> None:
    cloud = await asyncio.to_thread(start_cloud, tmp_path / "data")
    world: World = await asyncio.to_thread(make_world, cloud, devices=1)
    port = cloud.port
    device = DeviceClient(
        world.device.certificate, cloud.url, backoff=fast_backoff(), event_dir=tmp_path / "dev"
    )
    back: asyncio.Event = asyncio.Event()
    device.on_status = lambda status, _e: back.set() if status is DeviceStatus.ONLINE else None
    await device.start()
    try:
        await device.event("motion", {"n": 0})
        back.clear()
        assert await asyncio.to_thread(cloud.stop) == 0
        for n in (1, 2, 3):
            await device.event("motion", {"n": n})  # queued: nothing to send them to
        assert len(device.events) == 3
        cloud = await asyncio.to_thread(start_cloud, tmp_path / "data", port=port)
        async with asyncio.timeout(20):
            await back.wait()
        await device.events_sent(timeout=20)  # sent once online
        async with app_sdk(cloud.url, world.owner) as sdk:

            async def listed() -> list[object]:
                got = await sdk.request("event.since", {"after": 0})
                return [e["value"] for e in got["events"]]

            assert await listed() == [{"n": n} for n in range(4)]
        assert device.events.lost == 0
    finally:
        await device.stop()
        cloud.stop()


async def test_an_event_stored_late_with_a_lower_number_reaches_a_reconnecting_app(
    tmp_path: Path,
) -> None:
    """Events are numbered when stored but may commit, and be pushed, in any order across
    instances: an app that saw number 3 and then lost its link must still get number 2 if
    it committed late. (Made here by moving another device's event, which the app never
    saw, to its device.)"""
    cloud = await asyncio.to_thread(start_cloud, tmp_path / "data")
    world: World = await asyncio.to_thread(make_world, cloud, devices=2)
    mine, other = world.devices
    try:
        async with (
            device_client(cloud.url, mine) as device,
            device_client(cloud.url, other) as stranger,
            app_sdk(cloud.url, world.owner) as sdk,
        ):
            heard = Heard(sdk)
            await device.event("motion", {"n": 0})
            await heard.until(0)
            await stranger.event("motion", {"n": 1})  # numbered between; not the app's
            await stranger.events_sent(timeout=10)
            await device.event("motion", {"n": 2})
            await heard.until(2)
            db = Database(cloud.db)
            try:
                async with db.begin() as conn:
                    await conn.execute(
                        update(device_events)
                        .where(device_events.c.tid == other.tid)
                        .values(tid=mine.tid, value={"n": 1})
                    )
            finally:
                await db.close()
            port = cloud.port
            assert await asyncio.to_thread(cloud.stop) == 0  # the app's link drops
            cloud = await asyncio.to_thread(start_cloud, tmp_path / "data", port=port)
            await heard.until(1)  # fetched at the app's login
            await device.event("motion", {"n": 3})
            await heard.until(3)
        assert heard.values == [0, 2, 1, 3]  # each once
    finally:
        cloud.stop()


async def test_an_event_without_an_answer_in_time_is_sent_again_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cloud is slow to store the first event (its database stalls past the device's
    request timeout): the device keeps the event and sends it again; it is kept once.
    (It was dropped as "refused for good", silently: only a refusal of the event itself
    is that.)"""
    async with inproc_cloud(tmp_path, Clock()) as cloud:
        world: World = await asyncio.to_thread(make_world, cloud, devices=1)
        stalled, release = asyncio.Event(), asyncio.Event()
        original = Messaging.event

        async def slow(self: Messaging, *args: Any, **kwargs: Any) -> bool:
            if not stalled.is_set():
                stalled.set()
                await release.wait()
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(Messaging, "event", slow)
        device = DeviceClient(
            world.device.certificate, cloud.url, backoff=fast_backoff(), request_timeout=0.5
        )
        await device.start()
        try:
            async with app_sdk(cloud.url, world.owner) as sdk:
                heard = Heard(sdk)
                await device.event("motion", {"n": 0})  # no answer in 0.5 s: kept
                assert stalled.is_set() and len(device.events) == 1
                release.set()
                await device.events_sent(timeout=20)
                await heard.until(0)
                got = await sdk.request("event.since", {"after": 0})
                assert [e["value"] for e in got["events"]] == [{"n": 0}]
                assert heard.values == [0] and device.events.lost == 0
        finally:
            release.set()  # a failing test must not leave the cloud's handler waiting
            await device.stop()


async def test_a_device_with_queued_events_is_online_before_the_cloud_takes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events queued while offline are sent after the login, not as part of it: a device
    whose cloud is slow to take events (here: stalled) is online at once, and its events
    arrive once the cloud takes them. (The login waited for the whole queue, also for
    events raised meanwhile: under load, devices raising events as fast as the cloud
    acknowledged them stayed CONNECTING for minutes.)"""
    async with inproc_cloud(tmp_path, Clock()) as cloud:
        world: World = await asyncio.to_thread(make_world, cloud, devices=1)
        release = asyncio.Event()
        original = Messaging.event

        async def stalled(self: Messaging, *args: Any, **kwargs: Any) -> bool:
            await release.wait()
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(Messaging, "event", stalled)
        device = DeviceClient(
            world.device.certificate, cloud.url, backoff=fast_backoff(), request_timeout=60
        )
        for n in range(3):
            await device.event("motion", {"n": n})  # offline: queued
        try:
            await device.start(timeout=5)
            assert device.status is DeviceStatus.ONLINE and len(device.events) == 3
            async with app_sdk(cloud.url, world.owner) as sdk:
                heard = Heard(sdk)
                release.set()
                await device.events_sent(timeout=20)
                await heard.until(2)
                assert heard.values == [0, 1, 2] and device.events.lost == 0
        finally:
            release.set()
            await device.stop()
