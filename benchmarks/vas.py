"""Cloud-storage numbers: m3u8 generation, event list pages, segment uploads.

    .venv/bin/python benchmarks/vas.py [--events 100000] [--uploads 400]

One cloud process on PostgreSQL (a fresh schema in IOTVIDEO_TEST_PG's database), pinned
to CPU 0 when there are two; clients here.

1. m3u8 for a 24-hour range of 10-second segments (8640 stored): the playlist function
   alone, and the whole HTTP request (query, 8640 signed segment URLs, the playlist),
   p50/p99 over 50 requests.
2. Event list page latency with ``--events`` events stored for one device (spread over
   30 days, every alarm type bit 0..3): pages of 50, no filter, typeMasks [3] and [1, 2],
   p50/p99 over 300 requests.
3. Segment uploads (100 KB MPEG-TS-sized bodies, signed by the device), 16 in flight:
   segments per second and per cloud core (the rate divided by the cloud's CPU use).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import insert

from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import cloud_events, cloud_segments
from iotvideo.protocol import link as linkproto
from iotvideo.protocol.certificate import DeviceCertificate
from iotvideo.protocol.vas import Segment, build_m3u8, upload_message
from link import Cloud, Vendor, _pg, new_schema

DAY = 86_400


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def seed(db_url: str, tid: str, now: int, events: int) -> int:
    """8640 segments for a day from now (a service shows nothing from before it began),
    ``events`` events over the last 30 days; the day's start."""
    db = Database(db_url)
    day_start = now
    try:
        async with db.begin() as conn:
            rows = [
                {
                    "tid": tid,
                    "chn_num": 0,
                    "start_ms": (day_start + i * 10) * 1000,
                    "end_ms": (day_start + i * 10 + 10) * 1000,
                    "size": 100_000,
                    "path": f"vas/{tid}/0/{i}.ts",
                    "created_at": now,
                }
                for i in range(8640)
            ]
            await conn.execute(insert(cloud_segments), rows)
        rng = random.Random(7)
        for chunk in range(0, events, 10_000):
            async with db.begin() as conn:
                await conn.execute(
                    insert(cloud_events),
                    [
                        {
                            "alarm_id": secrets.token_hex(10),
                            "tid": tid,
                            "chn_num": 0,
                            "alarm_type": rng.randint(1, 15),
                            "first_alarm_type": 1,
                            "start_time": now - rng.randint(0, 30 * DAY),
                            "end_time": now,
                            "picture": None,
                            "thumb": None,
                            "created_at": now,
                        }
                        for _ in range(min(10_000, events - chunk))
                    ],
                )
    finally:
        await db.close()
    return day_start


async def timed(
    http: httpx.AsyncClient, url: str, params: dict, headers: dict, n: int
) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = await http.get(url, params=params, headers=headers)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.text
    return samples


async def run(args: argparse.Namespace, root: Path, db_url: str) -> None:
    cpu = 0 if (os.cpu_count() or 1) > 1 else None
    cloud = Cloud(root, db=db_url, cpu=cpu)
    try:
        vendor = Vendor(cloud)
        devices, user, _token = await asyncio.to_thread(vendor.setup)
        device = devices[0]
        tid = device.Tid
        await asyncio.to_thread(vendor, "CreateStorageService", PkgId="yc1m30d", Tid=tid)
        token = (
            await asyncio.to_thread(
                vendor, "CreateUsrToken", AccessId=user, UniqueId="vas", TtlMinutes=600
            )
        ).AccessToken
        now = int(time.time())
        print(f"storing 8640 segments and {args.events} events...", flush=True)
        day_start = await seed(db_url, tid, now, args.events)
        headers = {"authorization": f"Bearer {token}"}

        segments = [
            Segment(
                day_start * 1000 + i * 10_000,
                day_start * 1000 + i * 10_000 + 10_000,
                f"0-86400/{i}.ts",
            )
            for i in range(8640)
        ]
        pure = []
        for _ in range(50):
            t0 = time.perf_counter()
            build_m3u8(segments, complete=True)
            pure.append((time.perf_counter() - t0) * 1000)
        async with httpx.AsyncClient(base_url=cloud.url, timeout=30) as http:
            address = (
                await http.get(
                    "/vas/address",
                    params={"deviceId": tid, "startTime": day_start, "endTime": day_start + DAY},
                    headers=headers,
                )
            ).json()["data"]
            hls = await timed(http, address["url"], None, {}, 50)
            body = (await http.get(address["url"])).text
            assert body.count("#EXTINF") == 8640, body.count("#EXTINF")
            print("m3u8 for 24 hours of 10 s segments (8640):")
            for name, samples in (("playlist function", pure), ("whole HTTP request", hls)):
                p50, p99 = quantiles(samples)
                print(f"  {name:22s}  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")

            print(f"event list, {args.events} events stored, pages of 50:")
            for name, masks in (
                ("no filter", None),
                ("typeMasks [3]", "3"),
                ("typeMasks [1, 2]", "1,2"),
            ):
                params = {
                    "deviceId": tid,
                    "startTime": now - 30 * DAY,
                    "endTime": now + 1,
                    "pageSize": 50,
                }
                if masks:
                    params["typeMasks"] = masks
                samples = await timed(http, "/vas/events", params, headers, 100)
                p50, p99 = quantiles(samples)
                print(f"  {name:22s}  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")

            # Uploads
            cert = DeviceCertificate.parse(device.Certificate)
            body_bytes = secrets.token_bytes(100_000)
            start = now * 1000 + 10_000_000
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(args.uploads):
                queue.put_nowait(start + i * 2000)

            async def uploader() -> None:
                while not queue.empty():
                    s = queue.get_nowait()
                    target = f"/vas/device/segment?chn=0&start={s}&end={s + 2000}"
                    ts = int(time.time())
                    message = upload_message(tid, "POST", target, body_bytes, ts)
                    sig = linkproto.sign(cert.private_key, message)
                    response = await http.post(
                        target,
                        content=body_bytes,
                        headers={"x-iv-tid": tid, "x-iv-time": str(ts), "x-iv-signature": sig},
                    )
                    assert response.status_code == 200, response.text

            c0, t0 = cloud.cpu_seconds(), time.perf_counter()
            await asyncio.gather(*(uploader() for _ in range(16)))
            took = time.perf_counter() - t0
            used = cloud.cpu_seconds() - c0
            rate = args.uploads / took
            print(
                f"segment uploads (100 KB, 16 in flight): {rate:.0f}/s "
                f"({rate * 0.1:.1f} MB/s) with {used / took:.2f} cloud cores busy: "
                f"{args.uploads / used:.0f} segments/s per cloud core"
            )
    finally:
        cloud.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--uploads", type=int, default=400)
    args = parser.parse_args()

    async def go() -> None:
        schema, db = await new_schema("iv_vas")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                await run(args, Path(tmp), db)
        finally:
            await _pg(f"DROP SCHEMA {schema} CASCADE")

    asyncio.run(go())


if __name__ == "__main__":
    main()
