"""An instance dies: how long until every client it held is back on the others.

    .venv/bin/python benchmarks/failover.py [--devices 10000]

Three cloud processes share PostgreSQL (127.0.0.1:5432, a schema of their own) and Redis
(127.0.0.1:6379); ``--devices`` lightweight devices (raw WebSockets, the protocol's login)
in this process, spread over the three. Each device reconnects as the SDKs do (after a lost
link to a random other URL, after a failed attempt to the next one; backoff with full
jitter: uniform in [0, min(30 s, 0.5 s * 2^attempt)]). One
instance is killed (SIGKILL); printed: how many devices it held, and the time from the
kill until the last of them was logged in again elsewhere (p50 and max per device).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import websockets

from iotvideo.protocol import link
from iotvideo.protocol.certificate import DeviceCertificate
from link import REDIS, Cloud, Vendor, _pg, new_schema


class Roamer:
    """One device that stays logged in to one of ``urls``, moving on when one goes."""

    def __init__(self, cert: DeviceCertificate, urls: list[str], first: int) -> None:
        self.cert, self.urls, self.index = cert, urls, first
        self.online = asyncio.Event()
        self.changed = asyncio.Event()  # set at every login
        self.url = ""
        self.back_at = 0.0  # when it last logged in

    async def run(self) -> None:
        attempt = 0
        while True:
            url = self.urls[self.index % len(self.urls)]
            try:
                async with websockets.connect(url, ping_interval=None, max_size=1 << 16) as ws:
                    hello = json.loads(await ws.recv())
                    ts = int(time.time())
                    sig = link.sign_login(
                        self.cert.private_key, self.cert.tid, hello["data"]["nonce"], ts
                    )
                    login = {"tid": self.cert.tid, "ts": ts, "sig": sig}
                    await ws.send(json.dumps({"id": 1, "op": "login", "data": login}))
                    while True:
                        frame = json.loads(await ws.recv())
                        if frame.get("id") == 1:
                            break
                    if frame["code"] != 0:
                        raise OSError(f"refused: {frame}")
                    attempt, self.url, self.back_at = 0, url, time.perf_counter()
                    self.online.set()
                    self.changed.set()
                    async for _ in ws:  # until the connection goes
                        pass
            except (TimeoutError, OSError, websockets.WebSocketException):
                pass
            if self.online.is_set():  # a lost link: a random one of the others
                self.index += 1 + random.randrange(len(self.urls) - 1)
            else:
                self.index += 1
            self.online.clear()
            await asyncio.sleep(random.uniform(0, min(30.0, 0.5 * 2**attempt)))
            attempt += 1


async def run(args: argparse.Namespace, root: Path) -> None:
    schema, db = await new_schema("iv_failover")
    clouds = [Cloud(root / f"c{i}", db=db, bus=REDIS) for i in range(3)]
    tasks: list[asyncio.Task[None]] = []
    try:
        vendor = await asyncio.to_thread(Vendor, clouds[0])
        print(f"creating {args.devices} devices...", flush=True)
        devices, _, _ = await asyncio.to_thread(vendor.setup, args.devices)
        urls = [c.device_url for c in clouds]
        roamers = [
            Roamer(DeviceCertificate.parse(d.Certificate), urls, i % 3)
            for i, d in enumerate(devices)
        ]
        t0 = time.perf_counter()
        limit = asyncio.Semaphore(300)

        async def start(roamer: Roamer) -> None:
            async with limit:
                tasks.append(asyncio.create_task(roamer.run()))
                await roamer.online.wait()

        await asyncio.gather(*(start(r) for r in roamers))
        print(f"{len(roamers)} devices online on 3 instances in {time.perf_counter() - t0:.1f} s")
        victims = [r for r in roamers if r.url == urls[0]]
        killed = time.perf_counter()
        clouds[0].proc.kill()
        clouds[0].proc.wait()
        await asyncio.gather(*(_moved(r, urls[0]) for r in victims))
        took = [r.back_at - killed for r in victims]
        print(
            f"instance killed holding {len(victims)} devices: all back on the others in "
            f"{max(took):.1f} s (per device p50 {statistics.median(took):.1f} s)"
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for cloud in clouds:
            if cloud.proc.poll() is None:
                cloud.stop()
        await _pg(f"DROP SCHEMA {schema} CASCADE")


async def _moved(roamer: Roamer, dead: str) -> None:
    """Until ``roamer`` is logged in somewhere other than ``dead``."""
    while not (roamer.online.is_set() and roamer.url != dead):
        await roamer.changed.wait()
        roamer.changed.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
