"""Link numbers: round trips, routed messages per cloud core, idle connections.

    .venv/bin/python benchmarks/link.py [--reads 2000] [--idle 10000] [--skip-idle]

1. Property read round trip app -> cloud -> device -> cloud -> app (a live ProReadonly
   read), p50/p99: one cloud process (in-process bus, SQLite), then two cloud processes on
   PostgreSQL and Redis with the app on one and the device on the other.
2. The same request/reply through Mosquitto (127.0.0.1:1883) with aiomqtt clients, and
   the ratio ours / Mosquitto's.
3. Routed messages per second per cloud core: many reads in flight through one cloud
   process pinned to CPU 0; each read is two routed messages (request to the device,
   answer to the app); the rate is divided by the cloud's CPU use.
4. Idle device connections one cloud process holds, and its memory per connection.

Clients run in this process (pinned to the other CPU when there is one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import websockets
from sqlalchemy.engine import make_url
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iotvideo.v20191126 import iotvideo_client, models

from iotvideo.app import IoTVideo
from iotvideo.cloud.link.session import MAX_IN_FLIGHT
from iotvideo.device import DeviceClient
from iotvideo.device.simulator import DEMO_MODEL
from iotvideo.protocol import link
from iotvideo.protocol.certificate import DeviceCertificate

PG_URL = os.environ.get("IOTVIDEO_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("IOTVIDEO_TEST_REDIS", "redis://127.0.0.1:6379/0")
TEMP = "ProReadonly.temperature"


class Cloud:
    def __init__(
        self, data: Path, *, db: str | None = None, bus: str = "memory", cpu: int | None = None
    ) -> None:
        cmd = [sys.executable, "-m", "iotvideo", "cloud", "--data", str(data), "--port", "0"]
        cmd += ["--log-level", "warning", "--bus", bus] + (["--db", db] if db else [])
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        # Thousands of simulated devices log in from one address: lift the per-address
        # login limits and the per-session request rate for the run.
        env = {
            **os.environ,
            "IOTVIDEO_LOGIN_RATE": "1000000",
            "IOTVIDEO_LINK_RATE": "1000000",
            "IOTVIDEO_MAX_PENDING_PER_ADDRESS": "1000000",
        }
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.url = match[1]
                break
        else:
            raise SystemExit("the cloud did not start")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        self.data = data
        self.db = db

    def key(self) -> tuple[str, str]:
        cmd = [sys.executable, "-m", "iotvideo", "keys", "create", "--data", str(self.data)]
        out = subprocess.run(
            cmd + (["--db", self.db] if self.db else []), capture_output=True, text=True, check=True
        )
        body = json.loads(out.stdout)
        return body["SecretId"], body["SecretKey"]

    @property
    def device_url(self) -> str:
        """Where devices open their link WebSocket."""
        return self.url.replace("http://", "ws://") + "/link/device"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def run_with_cloud(
    run: Callable[[argparse.Namespace, Cloud, Path], Coroutine[Any, Any, None]],
    args: argparse.Namespace,
) -> None:
    """``run(args, cloud, data)`` against a cloud of its own (SQLite, in-process bus)."""
    with tempfile.TemporaryDirectory() as tmp:
        cloud = Cloud(Path(tmp))
        try:
            asyncio.run(run(args, cloud, Path(tmp)))
        finally:
            cloud.stop()


class Vendor:
    def __init__(self, cloud: Cloud) -> None:
        http = HttpProfile(protocol="http", endpoint=cloud.url.removeprefix("http://"))
        self.client = iotvideo_client.IotvideoClient(
            credential.Credential(*cloud.key()), "ap-guangzhou", ClientProfile(httpProfile=http)
        )

    def __call__(self, action: str, **fields: Any) -> Any:
        request = getattr(models, f"{action}Request")()
        request._deserialize(fields)
        return getattr(self.client, action)(request)

    def setup(self, devices: int = 1) -> tuple[list[Any], str, str]:
        """A product with the demo model, devices, and an owner bound to the first one."""
        pid = self(
            "CreateProduct", ProductModel="b", ProductName="bench", ProductDescription="b"
        ).Data.ProductId
        self("RunIotModel", ProductId=pid, IotModel=json.dumps(DEMO_MODEL))
        made: list[Any] = []
        while len(made) < devices:
            made += self("CreateDevices", ProductId=pid, Number=min(100, devices - len(made))).Data
        user = self("CreateAppUsr", CunionId="bench-" + secrets.token_hex(4)).AccessId
        self("CreateBinding", AccessId=user, Tid=made[0].Tid, Role="owner")
        token = self("CreateUsrToken", AccessId=user, UniqueId="bench", TtlMinutes=600).AccessToken
        return made, user, token


def quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


async def read_round_trips(
    device_url: str, app_url: str, vendor: Vendor, reads: int
) -> list[float]:
    devices, user, token = await asyncio.to_thread(vendor.setup)
    dc = DeviceClient(devices[0].Certificate, device_url)
    dc.on_read("temperature")(lambda: 21.5)
    await dc.start()
    sdk = IoTVideo()
    sdk.setup(app_url)
    await sdk.register(user, token)
    tid = devices[0].Tid
    try:
        for _ in range(200):  # warm up
            await sdk.message.read_property(tid, TEMP)
        samples = []
        for _ in range(reads):
            t0 = time.perf_counter()
            value = await sdk.message.read_property(tid, TEMP)
            samples.append((time.perf_counter() - t0) * 1000)
            assert value["stVal"] == 21.5
        return samples
    finally:
        await sdk.unregister()
        await dc.stop()


async def mqtt_round_trips(reads: int) -> list[float]:
    """The same request/reply through Mosquitto: app -> broker -> device -> broker -> app."""
    tag = secrets.token_hex(4)
    async with (
        aiomqtt.Client("127.0.0.1", 1883) as device,
        aiomqtt.Client("127.0.0.1", 1883) as app,
    ):
        await device.subscribe(f"bench/{tag}/req")
        await app.subscribe(f"bench/{tag}/resp")

        async def serve() -> None:
            async for message in device.messages:
                request = json.loads(message.payload)  # type: ignore[arg-type]
                reply = {"id": request["id"], "code": 0, "data": {"value": {"stVal": 21.5, "t": 0}}}
                await device.publish(f"bench/{tag}/resp", json.dumps(reply))

        server = asyncio.create_task(serve())
        responses = app.messages.__aiter__()
        samples = []
        try:
            for i in range(reads + 200):
                t0 = time.perf_counter()
                body = {"id": i, "op": "prop.read", "data": {"tid": tag, "path": TEMP}}
                await app.publish(f"bench/{tag}/req", json.dumps(body))
                reply = json.loads((await responses.__anext__()).payload)  # type: ignore[arg-type]
                assert reply["id"] == i
                if i >= 200:
                    samples.append((time.perf_counter() - t0) * 1000)
        finally:
            server.cancel()
        return samples


async def routed_throughput(
    cloud: Cloud, vendor: Vendor, seconds: float, in_flight: int
) -> tuple[float, float]:
    devices, user, token = await asyncio.to_thread(vendor.setup)
    dc = DeviceClient(devices[0].Certificate, cloud.url)
    dc.on_read("temperature")(lambda: 21.5)
    await dc.start()
    sdk = IoTVideo()
    sdk.setup(cloud.url)
    await sdk.register(user, token)
    tid = devices[0].Tid
    # One session has at most MAX_IN_FLIGHT requests at the cloud; more are refused 20100.
    in_flight = min(in_flight, MAX_IN_FLIGHT)
    done = 0
    stop = time.perf_counter() + min(seconds, 2.0)  # the warm-up

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await sdk.message.read_property(tid, TEMP)
            done += 1

    try:
        await asyncio.gather(*(worker() for _ in range(in_flight)))  # warm up
        done, stop = 0, time.perf_counter() + seconds
        cpu0, t0 = cloud.cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed, cpu = time.perf_counter() - t0, cloud.cpu_seconds() - cpu0
        return 2 * done / elapsed, 2 * done / cpu
    finally:
        await sdk.unregister()
        await dc.stop()


async def device_login(url: str, cert: DeviceCertificate) -> Any:
    """A device's link WebSocket, logged in with the protocol's own login (no SDK)."""
    ws = await websockets.connect(url, ping_interval=None, max_size=1 << 16)
    hello = json.loads(await ws.recv())
    ts = int(time.time())
    sig = link.sign_login(cert.private_key, cert.tid, hello["data"]["nonce"], ts)
    login = {"tid": cert.tid, "ts": ts, "sig": sig}
    await ws.send(json.dumps({"id": 1, "op": "login", "data": login}))
    while True:  # the login reply (pushes may come first)
        frame = json.loads(await ws.recv())
        if frame.get("id") == 1:
            break
    assert frame["code"] == 0, frame
    return ws


class Fleet:
    """Devices logged in over raw WebSockets (the protocol's own login, no SDK), held open."""

    def __init__(self) -> None:
        self.sockets: list[Any] = []

    async def connect(self, url: str, certificates: list[str], *, in_flight: int = 200) -> float:
        """Log every device in, ``in_flight`` handshakes at a time; the seconds it took."""
        certs = [DeviceCertificate.parse(c) for c in certificates]
        limit = asyncio.Semaphore(in_flight)

        async def login(cert: DeviceCertificate) -> Any:
            async with limit:
                return await device_login(url, cert)

        t0 = time.perf_counter()
        self.sockets.extend(await asyncio.gather(*(login(c) for c in certs)))  # in their order
        return time.perf_counter() - t0

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        self.sockets.clear()


async def idle_devices(cloud: Cloud, vendor: Vendor, count: int) -> tuple[int, float, float]:
    """Log ``count`` devices in with raw WebSockets and hold them; (connected, KB each, s)."""
    print(f"  creating {count} devices...", flush=True)
    devices, _, _ = await asyncio.to_thread(vendor.setup, count)
    url = cloud.device_url
    before = cloud.rss_bytes()
    fleet = Fleet()
    took = await fleet.connect(url, [d.Certificate for d in devices])
    held = len(fleet.sockets)
    per_connection = (cloud.rss_bytes() - before) / held / 1024
    await fleet.close()
    return held, per_connection, took


async def new_schema(prefix: str) -> tuple[str, str]:
    """A fresh PostgreSQL schema for one run (the caller drops it): its name, and the
    database URL that keeps the cloud's tables in it."""
    schema = f"{prefix}_{secrets.token_hex(4)}"
    await _pg(f"CREATE SCHEMA {schema}")
    url = make_url(PG_URL).update_query_dict({"search_path": schema})
    return schema, url.render_as_string(hide_password=False)


async def _pg(sql: str) -> None:
    dsn = (
        make_url(PG_URL)
        .set(drivername="postgresql", query={})
        .render_as_string(hide_password=False)
    )
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _report(name: str, samples: list[float]) -> tuple[float, float]:
    p50, p99 = quantiles(samples)
    print(f"{name:48} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms   ({len(samples)} reads)", flush=True)
    return p50, p99


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one = Cloud(root / "one")
        try:
            vendor = await asyncio.to_thread(Vendor, one)
            single = _report(
                "read round trip, one cloud process",
                await read_round_trips(one.url, one.url, vendor, args.reads),
            )
        finally:
            one.stop()

        schema, db = await new_schema("iv_bench")
        a = Cloud(root / "a", db=db, bus=REDIS)
        b = Cloud(root / "b", db=db, bus=REDIS)
        try:
            vendor = await asyncio.to_thread(Vendor, a)
            _report(
                "read round trip, two processes over Redis",
                await read_round_trips(a.url, b.url, vendor, args.reads),
            )
        finally:
            a.stop()
            b.stop()
            await _pg(f"DROP SCHEMA {schema} CASCADE")

        mqtt = _report(
            "the same request/reply through Mosquitto", await mqtt_round_trips(args.reads)
        )
        print(
            f"{'ours / Mosquitto (one process)':48} p50 {single[0] / mqtt[0]:5.2f}x"
            f"   p99 {single[1] / mqtt[1]:5.2f}x"
        )

        pinned = Cloud(root / "pinned", cpu=0 if os.cpu_count() and os.cpu_count() > 1 else None)  # type: ignore[operator]
        try:
            vendor = await asyncio.to_thread(Vendor, pinned)
            rate, per_core = await routed_throughput(pinned, vendor, args.seconds, args.in_flight)
            print(
                f"{'routed messages (cloud on one core)':48} {rate:8.0f}/s"
                f"   = {per_core:8.0f}/s per cloud core"
            )
        finally:
            pinned.stop()

        if not args.skip_idle:
            idle = Cloud(root / "idle")
            try:
                vendor = await asyncio.to_thread(Vendor, idle)
                count, kb, took = await idle_devices(idle, vendor, args.idle)
                print(
                    f"{'idle device connections in one cloud process':48} {count}"
                    f"   {kb:5.1f} KB each   (logged in in {took:.0f} s)"
                )
            finally:
                idle.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--in-flight", type=int, default=MAX_IN_FLIGHT, help="reads at once (at most %(default)s)"
    )
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--skip-idle", action="store_true")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, os.sched_getaffinity(0) - {0})  # CPU 0 is the pinned cloud's
    asyncio.run(main(args))
