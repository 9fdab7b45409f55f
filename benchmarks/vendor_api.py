"""Vendor-API throughput and latency through the official client, on SQLite and PostgreSQL.

The cloud runs pinned to one core (CPU 0); the load comes from threads of official
`tencentcloud-sdk-python-iotvideo` clients pinned to the other cores, with keep-alive.
For CreateUsrToken and DescribeBindDev it prints requests per second and p50/p99 latency.

    .venv/bin/python benchmarks/vendor_api.py [--seconds 5] [--threads 4] [--backend both]

Besides the rate the machine reaches (two cores shared by the cloud, the client and
PostgreSQL), it prints the cloud's own CPU time per request, and from it the rate one
cloud core sustains.

Target (issue 2): >= 500 requests/s per cloud core on PostgreSQL, p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iotvideo.v20191126 import iotvideo_client, models

PG_URL = os.environ.get("IOTVIDEO_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def start_cloud(
    data: Path, db: str | None, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """The cloud pinned to CPU 0; returns the process and its endpoint (host:port)."""
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "iotvideo", "cloud", "--data", str(data)]
    cmd += ["--port", "0", "--log-level", "warning"] + (["--db", db] if db else [])
    # The per-key and per-session limits would cap what this measures: lift them.
    unlimited = {"IOTVIDEO_VENDOR_RATE": "1000000", "IOTVIDEO_LINK_RATE": "1000000"}
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, **unlimited, **(env or {})}
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"listening on https?://(\S+)", line)
        if match:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, match[1]
    raise SystemExit("the cloud did not start")


def new_key(data: Path, db: str | None) -> tuple[str, str]:
    import json

    cmd = [sys.executable, "-m", "iotvideo", "keys", "create", "--data", str(data)]
    out = subprocess.run(
        cmd + (["--db", db] if db else []), capture_output=True, text=True, check=True
    )
    key = json.loads(out.stdout)
    return key["SecretId"], key["SecretKey"]


def make_client(endpoint: str, key: tuple[str, str]) -> Any:
    http = HttpProfile(protocol="http", endpoint=endpoint, keepAlive=True)
    return iotvideo_client.IotvideoClient(
        credential.Credential(*key), "ap-guangzhou", ClientProfile(httpProfile=http)
    )


def call(client: Any, action: str, **fields: Any) -> Any:
    request = getattr(models, f"{action}Request")()
    request._deserialize(fields)
    return getattr(client, action)(request)


def load(
    clients: list[Any], seconds: float, work: Callable[[Any, int], None]
) -> tuple[float, list[float]]:
    """Run ``work`` in one thread per client for ``seconds``; return (req/s, latencies in ms)."""
    latencies: list[list[float]] = [[] for _ in clients]
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            work(clients[i], n)
            latencies[i].append((time.perf_counter() - t0) * 1000)
            n += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(clients))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    flat = [x for per in latencies for x in per]
    return len(flat) / elapsed, flat


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1]


def bench(backend: str, seconds: float, threads: int) -> None:
    schema = f"iv_bench_{secrets.token_hex(4)}"
    dsn = (
        make_url(PG_URL)
        .set(drivername="postgresql", query={})
        .render_as_string(hide_password=False)
    )
    db = _with_schema(PG_URL, schema) if backend == "postgres" else None
    if db:
        asyncio.run(_pg(dsn, f"CREATE SCHEMA {schema}"))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        proc, endpoint = start_cloud(data, db)
        try:
            key = new_key(data, db)
            clients = [make_client(endpoint, key) for _ in range(threads)]
            setup = clients[0]
            pid = call(
                setup,
                "CreateProduct",
                ProductModel="b",
                ProductName="bench",
                ProductDescription="b",
            )
            tids = [
                d.Tid
                for d in call(setup, "CreateDevices", ProductId=pid.Data.ProductId, Number=5).Data
            ]
            user = call(setup, "CreateAppUsr", CunionId="bench").AccessId
            for i, tid in enumerate(tids):
                call(
                    setup,
                    "CreateBinding",
                    AccessId=user,
                    Tid=tid,
                    Role="owner" if i < 3 else "guest",
                )

            def usr_token(c: Any, n: int) -> None:
                call(c, "CreateUsrToken", AccessId=user, UniqueId=f"t{n % 16}", TtlMinutes=60)

            def bind_dev(c: Any, n: int) -> None:
                assert len(call(c, "DescribeBindDev", AccessId=user).Data) == 5

            for name, work in (("CreateUsrToken", usr_token), ("DescribeBindDev", bind_dev)):
                load(clients, 1.0, work)  # warm up
                cpu0 = cpu_seconds(proc.pid)
                rate, lat = load(clients, seconds, work)
                per_request = (cpu_seconds(proc.pid) - cpu0) / len(lat)
                p50, p99 = percentile(lat, 50), percentile(lat, 99)
                print(
                    f"{backend:9} {name:16} {rate:6.0f} req/s   p50 {p50:6.2f} ms"
                    f"   p99 {p99:6.2f} ms   cloud CPU {per_request * 1000:5.2f} ms/req"
                    f" = {1 / per_request:5.0f} req/s per core"
                    f"   ({len(lat)} requests, {threads} threads)",
                    flush=True,
                )
        finally:
            proc.terminate()
            proc.wait(30)
            if db:
                asyncio.run(_pg(dsn, f"DROP SCHEMA {schema} CASCADE"))


def _with_schema(url: str, schema: str) -> str:
    parsed = make_url(url).update_query_dict({"search_path": schema})
    return parsed.render_as_string(hide_password=False)


async def _pg(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4, help="concurrent client requests")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, os.sched_getaffinity(0) - {0})  # keep CPU 0 for the cloud
    print(f"cloud on CPU 0; client on CPUs {sorted(os.sched_getaffinity(0))}")
    for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        bench(backend, args.seconds, args.threads)


if __name__ == "__main__":
    main()
