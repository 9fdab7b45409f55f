"""A fleet behind HAProxy through every failure at once: three cloud instances
(deploy/haproxy.cfg as shipped) on a private PostgreSQL and a private Redis; thousands of
devices raising events and hundreds of apps writing to them and listening. Under that
load one instance is killed (SIGKILL), then Redis is killed and started again, then
PostgreSQL. Afterwards every client is back, every event a device raised is kept once
and reached its owner's app once, and every acknowledged write is what the cloud and
the device hold."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import re
import signal
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from iotvideo.app import IoTVideo, LinkStatus
from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import device_events, devices
from iotvideo.device import DeviceClient, DeviceStatus
from iotvideo.protocol.errors import IVError
from tests.cloud.official import call, client
from tests.link.world import fast_backoff
from tests.services import Postgres, Redis, haproxy
from tests.support import Cloud, CloudAddress, new_key, start_cloud

pytestmark = pytest.mark.postgres

DEVICES = 2000
#: Each app owns this many devices (so DEVICES / DEVICES_PER_APP apps).
DEVICES_PER_APP = 5
#: Seconds between a device's events, and between an app's writes, under load.
EVENT_EVERY = 4.0
WRITE_EVERY = 2.0
#: Seconds a fault may take to heal before the test says which clients are not back.
HEAL = 60.0
MODEL = {
    "ProWritable": {"level": {"type": "uint32", "min": 0, "max": 1_000_000, "default": 0}},
    "Event": {"motion": {"type": "json"}},
}


@dataclass
class App:
    access_id: str
    token: str
    tids: list[str]
    sdk: IoTVideo | None = None
    #: (tid, n) of every event heard, repeats included.
    heard: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: Per device: the last value acknowledged, and every value asked for.
    acked: dict[str, int] = field(default_factory=dict)
    asked: dict[str, set[int]] = field(default_factory=dict)


@dataclass
class Camera:
    tid: str
    certificate: str
    client: DeviceClient | None = None
    raised: int = 0
    applied: list[int] = field(default_factory=list)


@dataclass
class Fleet:
    clouds: list[Cloud]
    url: str
    postgres: Postgres
    redis: Redis
    cameras: list[Camera]
    apps: list[App]


def populate(through: CloudAddress, db_url: str) -> tuple[list[Camera], list[App]]:
    """A product with MODEL, DEVICES devices and their apps, through the vendor API
    (sixteen callers at once)."""
    key = new_key(db_url)
    api = client(through, key)
    pid = call(
        api, "CreateProduct", ProductModel="ipc", ProductName="fleet", ProductDescription="fleet"
    ).Data.ProductId
    call(api, "RunIotModel", ProductId=pid, IotModel=json.dumps(MODEL))
    made: list[Camera] = []
    for _ in range(DEVICES // 100):
        batch = call(api, "CreateDevices", ProductId=pid, Number=100).Data
        made += [Camera(d.Tid, d.Certificate) for d in batch]

    def new_app(n: int) -> App:
        own = client(through, key)
        tids = [c.tid for c in made[n * DEVICES_PER_APP : (n + 1) * DEVICES_PER_APP]]
        access_id = call(own, "CreateAppUsr", CunionId=f"user{n}").AccessId
        for tid in tids:
            call(own, "CreateBinding", AccessId=access_id, Tid=tid, Role="owner")
        token = call(
            own, "CreateUsrToken", AccessId=access_id, UniqueId=f"t{n}", TtlMinutes=120
        ).AccessToken
        return App(access_id, token, tids)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        apps = list(pool.map(new_app, range(DEVICES // DEVICES_PER_APP)))
    return made, apps


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    postgres = Postgres(max_connections=200)
    redis = Redis(tmp_path)
    clouds: list[Cloud] = []
    try:
        postgres.start()
        redis.start()
        # One address for every client here: the per-address login and vendor limits are
        # raised as for clients behind one NAT.
        env = {
            "IOTVIDEO_URL_SECRET": "ab" * 32,
            "IOTVIDEO_DB_POOL": "20",
            "IOTVIDEO_LOGIN_RATE": "100000",
            "IOTVIDEO_VENDOR_RATE": "100000",
            "IOTVIDEO_MAX_PENDING_LINKS": "5000",
            "IOTVIDEO_MAX_PENDING_PER_ADDRESS": "5000",
        }
        shared = tmp_path / "shared"
        for _ in range(3):
            clouds.append(start_cloud(shared, postgres.url, bus=redis.url, env=env))
        with haproxy([c.url.removeprefix("http://") for c in clouds]) as (url, _log):
            through = CloudAddress(shared, postgres.url, url)
            cameras, apps = populate(through, postgres.url)
            yield Fleet(clouds, url, postgres, redis, cameras, apps)
    finally:
        for cloud in clouds:
            cloud.stop()  # a killed one too: its log pipe is closed
            # Shown by pytest when the test failed: what each cloud complained of, counted.
            said = Counter(
                re.sub(r"[0-9A-F]{24}", "<tid>", line.split(" ", 2)[-1].strip())
                for line in cloud.log
                if re.match(r"\d{4}-\d\d-\d\d .* (WARNING|ERROR) ", line)
            )
            counted = (f"  {n} x {text}" for text, n in said.most_common(15))
            print(f"cloud {cloud.url}:", *counted, sep="\n")
        redis.remove()
        postgres.remove()


@asynccontextmanager
async def running(fleet: Fleet) -> AsyncIterator[AsyncExitStack]:
    """Every device and app connected through the balancer."""
    async with AsyncExitStack() as stack:

        async def connect(camera: Camera) -> None:
            dc = DeviceClient(camera.certificate, fleet.url, backoff=fast_backoff())
            dc.on_write("level")(lambda value: camera.applied.append(int(value)) or value)
            camera.client = dc
            await dc.start(timeout=HEAL)
            stack.push_async_callback(dc.stop)

        async def register(app: App) -> None:
            sdk = IoTVideo()
            sdk.setup(fleet.url, backoff=fast_backoff())
            app.sdk = sdk

            def on_message(message: Any) -> None:
                if message.kind == "event" and isinstance(message.value, dict):
                    app.heard[(message.device_id, int(message.value["n"]))] += 1

            sdk.message.add_listener(on_message)
            await sdk.register(app.access_id, app.token, timeout=HEAL)
            stack.push_async_callback(sdk.unregister)

        await asyncio.gather(*(connect(c) for c in fleet.cameras))
        await asyncio.gather(*(register(a) for a in fleet.apps))
        yield stack


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """The load's pacing: ``seconds``, or less when the load stops."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def raise_events(camera: Camera, stop: asyncio.Event) -> None:
    """An event every EVENT_EVERY s (the first at a moment of the first period that
    differs between devices), numbered; queued on the device while the cloud cannot
    take it."""
    assert camera.client is not None
    await pause(stop, (zlib.crc32(camera.tid.encode()) % 1000) / 1000 * EVENT_EVERY)
    while not stop.is_set():
        n = camera.raised
        camera.raised += 1
        await camera.client.event("motion", {"n": n})
        await pause(stop, EVENT_EVERY)


async def write_levels(app: App, values: Iterator[int], stop: asyncio.Event) -> None:
    """A write to one of the app's devices every WRITE_EVERY s, each a new value; what
    the cloud acknowledged is noted. A write refused during an outage is not retried."""
    assert app.sdk is not None
    await pause(stop, (zlib.crc32(app.access_id.encode()) % 1000) / 1000 * WRITE_EVERY)
    for tid in itertools.cycle(app.tids):
        if stop.is_set():
            return
        value = next(values)
        app.asked.setdefault(tid, set()).add(value)
        try:
            await app.sdk.message.write_property(tid, "ProWritable.level.setVal", str(value))
            app.acked[tid] = value
        except IVError:
            pass  # an outage or a lost link: maybe applied, not acknowledged
        await pause(stop, WRITE_EVERY)


def awaiting(task: asyncio.Task[Any]) -> str:
    """Where a task waits: its chain of awaits, outermost first."""
    steps = []
    step: Any = task.get_coro()
    while (frame := getattr(step, "cr_frame", None) or getattr(step, "ag_frame", None)) is not None:
        steps.append(
            f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}"
        )
        step = getattr(step, "cr_await", None) or getattr(step, "ag_await", None)
    return " <- ".join(steps)


def print_waits() -> None:
    """Where this process's tasks wait, counted (shown when a client is not back)."""
    waits = Counter(awaiting(task) for task in asyncio.all_tasks())
    print(
        "tasks waiting in:", *(f"  {n} x {where}" for where, n in waits.most_common(15)), sep="\n"
    )


async def explain_unheard(fleet: Fleet, left: list[str]) -> None:
    """What the cloud kept of each unheard event, and where each app's cursor stands."""
    by_id = {app.access_id: app for app in fleet.apps}
    db = Database(fleet.postgres.url)
    try:
        for line in left[:5]:
            access_id, tid, n = line.split("/")
            app = by_id[access_id]
            async with db.read() as conn:
                rows = [
                    (m["seq"], m["t"], m["value"], m["event_id"])
                    for m in (
                        r._mapping  # a Row's .t is its tuple view, not the column
                        for r in await conn.execute(
                            select(device_events).where(device_events.c.tid == tid)
                        )
                    )
                    if isinstance(m["value"], dict) and m["value"].get("n") == int(n)
                ]
            assert app.sdk is not None
            manager = app.sdk.message
            seen = [r[0] in manager._seen_set for r in rows]
            print(f"unheard {line}: kept {rows}; app cursor {manager.event_cursor}, base "
                  f"{manager._base}, marks {list(manager._marks)[:3]}, seen {seen}, "
                  f"link {app.sdk.link_status}")  # fmt: skip
            if rows:
                got = await app.sdk.request("event.since", {"after": rows[0][0] - 1, "limit": 5})
                print(f"  event.since({rows[0][0] - 1}) -> {got.get('events', [])[:2]}")
    finally:
        await db.close()


async def until(condition: Callable[[], list[str]], changed: asyncio.Event, what: str) -> float:
    """Seconds until ``condition()`` (what is still missing) is empty; it is looked at
    again whenever ``changed`` is set."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(HEAL):
            while condition():
                changed.clear()
                await changed.wait()
    except TimeoutError:
        left = condition()
        print_waits()
        raise AssertionError(f"{len(left)} {what} after {HEAL} s: {left[:5]}") from None
    return time.monotonic() - started


def watch_clients(fleet: Fleet) -> asyncio.Event:
    """An event set whenever a device's or an app's link changes state."""
    changed = asyncio.Event()
    for camera in fleet.cameras:
        assert camera.client is not None
        camera.client.on_status = lambda *_: changed.set()
    for app in fleet.apps:
        assert app.sdk is not None
        app.sdk.add_status_listener(lambda _s: changed.set())
    return changed


def not_back(fleet: Fleet, since: dict[str, int]) -> Callable[[], list[str]]:
    """The clients not online yet; a device in ``since`` also needs a login after the
    count given there."""

    def lagging() -> list[str]:
        out = []
        for camera in fleet.cameras:
            dc = camera.client
            assert dc is not None
            if dc.logins <= since.get(camera.tid, -1) or dc.status is not DeviceStatus.ONLINE:
                out.append(f"{camera.tid} ({dc.status.name}, {dc.logins} logins)")
        for app in fleet.apps:
            assert app.sdk is not None
            if app.sdk.link_status is not LinkStatus.ONLINE:
                out.append(app.access_id)
        return out

    return lagging


async def test_a_fleet_through_an_instance_kill_and_redis_and_postgres_restarts(
    fleet: Fleet,
) -> None:
    async with running(fleet):
        changed = watch_clients(fleet)
        heard = asyncio.Event()
        for app in fleet.apps:
            assert app.sdk is not None
            app.sdk.message.add_listener(lambda _m: heard.set())
        stop = asyncio.Event()
        values = itertools.count(1)
        load = [asyncio.ensure_future(raise_events(c, stop)) for c in fleet.cameras]
        load += [asyncio.ensure_future(write_levels(a, values, stop)) for a in fleet.apps]
        timings: dict[str, float] = {}
        victim, survivors = fleet.clouds[0], fleet.clouds[1:]
        try:
            # Under load: a round of events heard by the apps first.
            await until(lambda: [c.tid for c in fleet.cameras if c.raised < 1], heard, "idle")

            # 1. An instance killed: its clients come back through HAProxy.
            on_victim = await devices_on(fleet, victim)
            assert 0 < len(on_victim) < DEVICES
            logins = {c.tid: c.client.logins for c in fleet.cameras if c.tid in on_victim}
            victim.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.proc.wait)
            timings["instance kill: every client back"] = await until(
                not_back(fleet, logins), changed, "clients not back after the kill"
            )

            # 2. Redis killed and started again.
            fleet.redis.kill()
            for cloud in survivors:
                await asyncio.to_thread(cloud.wait_for_log, "Redis bus lost", 30)
            t0 = time.monotonic()
            await asyncio.to_thread(fleet.redis.start)
            for cloud in survivors:
                await asyncio.to_thread(cloud.wait_for_log, "Redis bus reconnected", 30)
            timings["Redis restart: both buses back"] = time.monotonic() - t0

            # 3. PostgreSQL stopped at once (as in a crash) and started again.
            await asyncio.to_thread(fleet.postgres.stop)
            await asyncio.to_thread(fleet.postgres.start)
            timings["PostgreSQL restart: every client online"] = await until(
                not_back(fleet, {}), changed, "clients not back after PostgreSQL"
            )
        finally:
            stop.set()
            await asyncio.gather(*load)

        # Every event queued on a device reaches the cloud, none dropped by its queue.
        t0 = time.monotonic()
        for camera in fleet.cameras:
            assert camera.client is not None
            await camera.client.events_sent(timeout=HEAL)
            assert camera.client.events.lost == 0
        timings["events queued on devices: sent"] = time.monotonic() - t0
        raised = {c.tid: c.raised for c in fleet.cameras}
        assert sum(raised.values()) > 2 * DEVICES

        # Every app hears every event of its devices once (pushed or fetched after a
        # reconnect or a resync).
        def unheard() -> list[str]:
            return [
                f"{app.access_id}/{tid}/{n}"
                for app in fleet.apps
                for tid in app.tids
                for n in range(raised[tid])
                if app.heard[(tid, n)] == 0
            ]

        try:
            timings["events: every app heard all"] = await until(unheard, heard, "events unheard")
        except AssertionError:
            await explain_unheard(fleet, unheard())
            raise
        doubled = [
            (app.access_id, key, count)
            for app in fleet.apps
            for key, count in app.heard.items()
            if count != 1
        ]
        assert not doubled, doubled[:5]

        # The cloud kept each event once.
        db = Database(fleet.postgres.url)
        try:
            async with db.read() as conn:
                kept = dict(
                    (
                        await conn.execute(
                            select(device_events.c.tid, func.count()).group_by(device_events.c.tid)
                        )
                    ).all()
                )
                online = await conn.scalar(
                    select(func.count()).select_from(devices).where(devices.c.online != 0)
                )
        finally:
            await db.close()
        assert kept == {tid: n for tid, n in raised.items() if n}
        assert online == DEVICES

        # Every acknowledged write holds (or a later one that was applied): the cloud's
        # setVal and stVal and the device's value agree. A write that failed in an outage
        # may still be handed over and recorded in the background (reconcile): its record
        # reaches the apps as a push, and what was off is looked at again then.
        by_tid = {c.tid: c for c in fleet.cameras}

        async def off(app: App, tid: str) -> str | None:
            assert app.sdk is not None
            value = await app.sdk.message.read_property(tid, "ProWritable.level")
            device = by_tid[tid]
            applied = device.applied[-1] if device.applied else None
            if (
                value["setVal"] == value["stVal"] == applied
                and value["setVal"] >= app.acked[tid]
                and value["setVal"] in app.asked[tid]
            ):
                return None
            return f"{tid}: acked {app.acked[tid]}, cloud {value}, device {device.applied}"

        wrong = [(app, tid) for app in fleet.apps for tid in app.acked]
        lines: list[str] = []
        try:
            async with asyncio.timeout(HEAL):
                while True:
                    heard.clear()
                    found = [(a, t, await off(a, t)) for a, t in wrong]
                    wrong = [(a, t) for a, t, line in found if line]
                    lines = [line for _, _, line in found if line]
                    if not wrong:
                        break
                    await heard.wait()
        except TimeoutError:
            pass
        assert not lines, lines[:5]
    print("fleet:", json.dumps({k: round(v, 2) for k, v in timings.items()}))


async def devices_on(fleet: Fleet, cloud: Cloud) -> set[str]:
    """The devices connected to ``cloud`` (by its id in /metrics and the devices table)."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(cloud.url + "/metrics")).text
    (instance,) = [
        s.labels["id"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "iotvideo_instance_info"
    ]
    db = Database(fleet.postgres.url)
    try:
        async with db.read() as conn:
            return set(
                await conn.scalars(
                    select(devices.c.tid).where(
                        devices.c.online != 0, devices.c.online_instance == instance
                    )
                )
            )
    finally:
        await db.close()
