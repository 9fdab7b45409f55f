"""What TLS costs: the vendor API and link round trips, plain and with `--tls-cert`, in one run.

The cloud (SQLite) runs pinned to CPU 0, the clients on the others. For the vendor API
(DescribeBindDev through the official client, keep-alive) it prints requests per second
and the cloud's CPU per request, hence requests per second per cloud core; for the link
it prints the p50/p99 of an app's `ping` round trip (one request at a time), and the time
to register (connect, TLS handshake, login).

    .venv/bin/python benchmarks/tls.py [--seconds 5] [--threads 4] [--pings 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.vendor_api import call, cpu_seconds, load, new_key, percentile, start_cloud
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iotvideo.v20191126 import iotvideo_client
from tests.tls import make_tls

from iotvideo.app import IoTVideo


def client(url: str, key: tuple[str, str], ca: Path | None) -> Any:
    scheme, endpoint = url.split("://", 1)
    http = HttpProfile(
        protocol=scheme, endpoint=endpoint, keepAlive=True, certification=str(ca) if ca else None
    )
    return iotvideo_client.IotvideoClient(
        credential.Credential(*key), "ap-guangzhou", ClientProfile(httpProfile=http)
    )


async def pings(url: str, access_id: str, token: str, count: int) -> tuple[float, list[float]]:
    sdk = IoTVideo()
    sdk.setup(url)
    t0 = time.perf_counter()
    await sdk.register(access_id, token)
    register_ms = (time.perf_counter() - t0) * 1000
    latencies = []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            await sdk.request("ping", {})
            latencies.append((time.perf_counter() - t0) * 1000)
    finally:
        await sdk.unregister()
    return register_ms, latencies


def bench(mode: str, seconds: float, threads: int, count: int, folder: Path) -> None:
    tls = make_tls(folder / "tls") if mode == "tls" else None
    if tls is not None:
        os.environ["SSL_CERT_FILE"] = str(tls.ca)  # what the SDK's websockets client trusts
    data = folder / mode
    env = {"IOTVIDEO_TLS_CERT": str(tls.cert), "IOTVIDEO_TLS_KEY": str(tls.key)} if tls else {}
    proc, endpoint = start_cloud(data, None, env)
    url = f"{'https' if tls else 'http'}://{endpoint}"
    try:
        key = new_key(data, None)
        clients = [client(url, key, tls.ca if tls else None) for _ in range(threads)]
        user = call(clients[0], "CreateAppUsr", CunionId="bench").AccessId
        token = call(clients[0], "CreateUsrToken", AccessId=user, UniqueId="b", TtlMinutes=60)

        def describe(c: Any, n: int) -> None:
            call(c, "DescribeBindDev", AccessId=user)

        load(clients, 1.0, describe)  # warm up
        cpu0 = cpu_seconds(proc.pid)
        rate, lat = load(clients, seconds, describe)
        per_request = (cpu_seconds(proc.pid) - cpu0) / len(lat)
        print(
            f"{mode:5} vendor API  {rate:6.0f} req/s   p50 {percentile(lat, 50):6.2f} ms"
            f"   p99 {percentile(lat, 99):6.2f} ms   cloud CPU {per_request * 1000:5.2f} ms/req"
            f" = {1 / per_request:5.0f} req/s per core",
            flush=True,
        )
        register_ms, rtt = asyncio.run(pings(url, user, token.AccessToken, count))
        print(
            f"{mode:5} link ping   p50 {percentile(rtt, 50):6.3f} ms   p99 "
            f"{percentile(rtt, 99):6.3f} ms   register {register_ms:6.1f} ms   ({count} pings)",
            flush=True,
        )
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--pings", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("plain", "tls"):
            bench(mode, args.seconds, args.threads, args.pings, Path(tmp))


if __name__ == "__main__":
    main()
