"""Fleet numbers: device reports per cloud core, with their latency.

    .venv/bin/python benchmarks/scale.py [--devices 2000] [--seconds 10] [--db sqlite|postgres]

One cloud process (pinned to CPU 0 when there are two) on PostgreSQL (127.0.0.1:5432, a
schema of its own) or SQLite; ``--devices`` lightweight devices (raw WebSockets, the
protocol's own login) in this process, pinned to the other CPU.

0. Login storm (what the other instances see when one dies): every device logs in at once
   (200 handshakes in flight), logins per second and per cloud core.
1. Saturation: every device keeps one ``report`` (ProReadonly.temperature) in flight for
   ``--seconds``: reports per second through the cloud, the cloud's CPU use, so reports
   per cloud core, and the latency of each report (request sent to reply read) p50/p99.
2. A fleet at a steady rate: each device reports every ``--every`` seconds (spread
   evenly): latency p50/p99 when the cloud is not saturated.
3. Devices at rest (``--idle N``): N more devices logged in and idle, the cloud's memory
   (RSS) before and after, per device.
4. Soak (``--soak MINUTES``): the fleet reports every ``--every`` s, raises an event with
   every tenth report, and ``--churn`` of the devices a second log out and in again; the
   cloud's RSS every 15 s, and its slope (least squares) after the first two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from iotvideo.protocol.certificate import DeviceCertificate
from link import Cloud, Fleet, Vendor, _pg, device_login, new_schema


async def report_once(ws: Any, request_id: int, value: float) -> float:
    """One report and its reply; the round trip in ms."""
    body = {"path": "ProReadonly.temperature", "value": value}
    t0 = time.perf_counter()
    await ws.send(json.dumps({"id": request_id, "op": "report", "data": body}))
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("id") == request_id and "op" not in frame:
            break
    assert frame["code"] == 0, frame
    return (time.perf_counter() - t0) * 1000


async def saturate(fleet: Fleet, cloud: Cloud, seconds: float) -> tuple[float, float, list[float]]:
    """Every device one report in flight: (reports/s, cloud cores used, latencies ms)."""
    samples: list[float] = []
    stop = 0.0

    async def device(ws: Any, first_id: int) -> None:
        request_id = first_id
        while time.perf_counter() < stop:
            request_id += 1
            samples.append(await report_once(ws, request_id, 20 + (request_id % 50) / 10))

    stop = time.perf_counter() + 2  # warm up
    await asyncio.gather(*(device(ws, 1000) for ws in fleet.sockets))
    samples.clear()
    cpu0, t0 = cloud.cpu_seconds(), time.perf_counter()
    stop = t0 + seconds
    await asyncio.gather(*(device(ws, 1_000_000) for ws in fleet.sockets))
    elapsed, cpu = time.perf_counter() - t0, cloud.cpu_seconds() - cpu0
    return len(samples) / elapsed, cpu / elapsed, samples


async def steady(fleet: Fleet, every: float, seconds: float) -> list[float]:
    """Each device reports every ``every`` s, the fleet spread evenly: latencies (ms)."""
    samples: list[float] = []
    stop = time.perf_counter() + seconds
    count = len(fleet.sockets)

    async def device(index: int, ws: Any) -> None:
        await asyncio.sleep(every * index / count)  # spread the fleet over the period
        request_id = 2_000_000
        next_at = time.perf_counter()
        while next_at < stop:
            request_id += 1
            samples.append(await report_once(ws, request_id, 21.0))
            next_at += every
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    await asyncio.gather(*(device(i, ws) for i, ws in enumerate(fleet.sockets)))
    return samples


async def soak(
    fleet: Fleet, cloud: Cloud, url: str, certificates: list[str], args: argparse.Namespace
) -> None:
    """Reports, events and reconnections for ``args.soak`` minutes; the cloud's memory."""
    seconds = args.soak * 60
    stop = time.perf_counter() + seconds
    count = len(fleet.sockets)
    certs = [DeviceCertificate.parse(c) for c in certificates]
    rng = random.Random(3)
    done = {"reports": 0, "events": 0, "logins": 0}

    async def device(index: int) -> None:
        ws = fleet.sockets[index]
        await asyncio.sleep(args.every * index / count)  # spread the fleet over the period
        request_id = 3_000_000
        next_at = time.perf_counter()
        while next_at < stop:
            request_id += 1
            if request_id % 10:
                await report_once(ws, request_id, 20 + (request_id % 50) / 10)
                done["reports"] += 1
            else:
                body = {"path": "Event.motion", "value": {"n": request_id}, "id": f"e{request_id}"}
                await ws.send(json.dumps({"id": request_id, "op": "event", "data": body}))
                while json.loads(await ws.recv()).get("id") != request_id:
                    pass
                done["events"] += 1
            if rng.random() < args.churn * args.every:  # log out and in again
                await ws.close()
                ws = fleet.sockets[index] = await device_login(url, certs[index])
                done["logins"] += 1
            next_at += args.every
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    samples: list[tuple[float, float]] = []

    async def sample() -> None:
        t0 = time.perf_counter()
        while time.perf_counter() < stop:
            at = time.perf_counter() - t0
            samples.append((at / 60, cloud.rss_bytes() / 2**20))
            print(f"  {at / 60:5.1f} min: cloud RSS {samples[-1][1]:.1f} MiB, {done}", flush=True)
            await asyncio.sleep(15)

    print(
        f"soak: {count} devices for {args.soak:g} min, a report every {args.every:g} s "
        f"(every tenth an event), {args.churn:.2%} of the devices reconnecting a second",
        flush=True,
    )
    await asyncio.gather(sample(), *(device(i) for i in range(count)))
    steady = [(m, r) for m, r in samples if m >= 2.0] or samples
    slope = statistics.linear_regression(*zip(*steady, strict=True)).slope if len(steady) > 1 else 0
    print(
        f"soak: RSS {samples[0][1]:.1f} -> {samples[-1][1]:.1f} MiB; after the first 2 min "
        f"{steady[0][1]:.1f} -> {steady[-1][1]:.1f} MiB, slope {slope:+.2f} MiB/min "
        f"({done['reports']} reports, {done['events']} events, {done['logins']} logins)"
    )


def quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


async def run(args: argparse.Namespace, root: Path) -> None:
    two_cpus = (os.cpu_count() or 1) > 1
    schema = ""
    db: str | None = None
    if args.db == "postgres":
        schema, db = await new_schema("iv_scale")
    cloud = Cloud(root, db=db, cpu=0 if two_cpus else None)
    if two_cpus:
        os.sched_setaffinity(0, {1})
    fleet = Fleet()
    try:
        vendor = await asyncio.to_thread(Vendor, cloud)
        print(f"creating {args.devices} devices...", flush=True)
        devices, _, _ = await asyncio.to_thread(vendor.setup, args.devices)
        url = cloud.device_url
        certificates = [d.Certificate for d in devices]
        await fleet.connect(url, certificates)  # first logins create each device's state
        await fleet.close()
        fleet = Fleet()
        cpu0 = cloud.cpu_seconds()
        took = await fleet.connect(url, certificates)
        cores = (cloud.cpu_seconds() - cpu0) / took
        print(
            f"login storm: {args.devices} devices at once logged in in {took:.1f} s = "
            f"{args.devices / took:.0f}/s at {cores:.2f} cores "
            f"= {args.devices / took / max(cores, 1e-9):.0f}/s per cloud core"
        )
        rate, cores, samples = await saturate(fleet, cloud, args.seconds)
        p50, p99 = quantiles(samples)
        print(
            f"reports, every device one in flight ({args.db}, cloud on one core): "
            f"{rate:.0f}/s at {cores:.2f} cores = {rate / max(cores, 1e-9):.0f}/s per cloud core"
        )
        print(f"  latency p50 {p50:.1f} ms  p99 {p99:.1f} ms")
        if args.every:
            samples = await steady(fleet, args.every, args.seconds)
            p50, p99 = quantiles(samples)
            print(
                f"reports every {args.every:g} s per device ({args.devices / args.every:.0f}/s): "
                f"latency p50 {p50:.1f} ms  p99 {p99:.1f} ms"
            )
        if args.soak:
            await soak(fleet, cloud, url, certificates, args)
        if args.idle:
            await fleet.close()
            print(f"creating {args.idle} more devices...", flush=True)
            more, _, _ = await asyncio.to_thread(vendor.setup, args.idle)
            before = cloud.rss_bytes()
            fleet = Fleet()
            took = await fleet.connect(url, [d.Certificate for d in more])
            grown = cloud.rss_bytes() - before
            print(
                f"{len(fleet.sockets)} devices at rest (logged in in {took:.0f} s): the cloud "
                f"grew by {grown / 2**20:.0f} MiB = {grown / len(fleet.sockets) / 1024:.1f} KB "
                f"per device (RSS {cloud.rss_bytes() / 2**20:.0f} MiB)"
            )
    finally:
        await fleet.close()
        cloud.stop()
        if schema:
            await _pg(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=1.0, help="0: skip the steady run")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--idle", type=int, default=0, help="devices to hold at rest")
    parser.add_argument("--soak", type=float, default=0, help="minutes of soak (0: none)")
    parser.add_argument(
        "--churn", type=float, default=0.002, help="soak: share of devices reconnecting a second"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
