"""A fleet at rest across instances: how many devices this machine holds, and KB each.

    .venv/bin/python benchmarks/at_rest.py [--devices 50000] [--instances 3] [--workers 3]

``--instances`` cloud processes share PostgreSQL (127.0.0.1:5432, a schema of their own)
and Redis (127.0.0.1:6379). ``--devices`` lightweight devices (raw WebSockets, the
protocol's own login) are spread over ``--workers`` processes (one process cannot open
more sockets than its open-file limit), each worker logging its share in to the
instances in turn. Printed: the devices held, how long the logins took, each instance's
RSS growth per device and the whole fleet's, and the machine's memory left.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from link import REDIS, Cloud, Fleet, Vendor, _pg, new_schema


def _hold(urls: list[str], certificates: list[str], pipe: Connection) -> None:
    """A worker: log ``certificates`` in over ``urls`` (in turn), report, hold until told."""

    async def go() -> None:
        fleet = Fleet()
        shares = [certificates[i :: len(urls)] for i in range(len(urls))]
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                fleet.connect(url, share, in_flight=100)
                for url, share in zip(urls, shares, strict=True)
            )
        )
        pipe.send((len(fleet.sockets), time.perf_counter() - t0))
        await asyncio.to_thread(pipe.recv)  # hold until the parent has measured
        await fleet.close()

    asyncio.run(go())


def _available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


async def run(args: argparse.Namespace, root: Path) -> None:
    schema, db = await new_schema("iv_at_rest")
    clouds = [Cloud(root / f"c{i}", db=db, bus=REDIS) for i in range(args.instances)]
    workers: list[tuple[mp.process.BaseProcess, Connection]] = []
    try:
        vendor = await asyncio.to_thread(Vendor, clouds[0])
        print(f"creating {args.devices} devices...", flush=True)
        t0 = time.perf_counter()
        devices, _, _ = await asyncio.to_thread(vendor.setup, args.devices)
        print(f"  created in {time.perf_counter() - t0:.0f} s", flush=True)
        certificates = [d.Certificate for d in devices]
        urls = [c.device_url for c in clouds]
        before = [c.rss_bytes() for c in clouds]
        free_before = _available_mib()
        context = mp.get_context("spawn")
        t0 = time.perf_counter()
        for i in range(args.workers):
            mine, theirs = context.Pipe()
            proc = context.Process(
                target=_hold, args=(urls, certificates[i :: args.workers], theirs), daemon=True
            )
            proc.start()
            workers.append((proc, mine))
        held = 0
        for _, pipe in workers:
            count, _ = await asyncio.to_thread(pipe.recv)
            held += count
        took = time.perf_counter() - t0
        grown = [c.rss_bytes() - b for c, b in zip(clouds, before, strict=True)]
        print(
            f"{held} devices at rest on {args.instances} instances "
            f"(logged in in {took:.0f} s = {held / took:.0f}/s from {args.workers} workers)"
        )
        for i, (cloud, growth) in enumerate(zip(clouds, grown, strict=True)):
            share = held / args.instances
            print(
                f"  instance {i}: RSS {cloud.rss_bytes() / 2**20:.0f} MiB, grew "
                f"{growth / 2**20:.0f} MiB = {growth / share / 1024:.1f} KB per device"
            )
        print(
            f"  the clouds grew by {sum(grown) / 2**20:.0f} MiB in all = "
            f"{sum(grown) / held / 1024:.1f} KB per device; the machine's available memory "
            f"went from {free_before} to {_available_mib()} MiB (clients included)"
        )
    finally:
        for proc, pipe in workers:
            if proc.is_alive():
                pipe.send("done")
        for proc, _ in workers:
            proc.join(60)
        for cloud in clouds:
            cloud.stop()
        await _pg(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=50_000)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
