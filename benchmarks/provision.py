"""Provisioning numbers: net-config callback latency, and QR decoding of filmed codes.

    .venv/bin/python benchmarks/provision.py [--runs 20] [--codes 100]

1. Time from the device receiving its Wi-Fi settings to the app's net-config callback,
   p50/p99 over ``--runs`` provisionings of fresh devices against one cloud process on
   loopback (SQLite, in-process bus), for the AP flow (the app seals the settings and
   POSTs them to the camera's local endpoint) and the QR flow (the camera decodes the
   app's PNG). The clock starts when the device has the settings (the endpoint took
   them, or the code decoded) and stops when the app's observer is called: joining the
   network (the default hook), logging in with the token, the cloud's push.
2. Decode rate of ``--codes`` QR codes, each with its own bind token, SSID and password,
   as a camera films a phone screen (``as_filmed``: scaled, rotated, blurred, noised);
   and the time one decode takes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from iotvideo.app import IoTVideo
from iotvideo.app.netconfig import LANDevice, QRCodeConfig
from iotvideo.device.provision import Provisioner, decode_qr
from iotvideo.device.simulator import as_filmed
from iotvideo.protocol.errors import IVError
from iotvideo.protocol.provision import WifiConfig
from link import Cloud, Vendor


async def provision_once(sdk: IoTVideo, device: Any, product_id: str, url: str, mode: str) -> float:
    """Provision one device; milliseconds from settings received to the app's callback."""
    called: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def observe(tid: str | None, error: IVError | None) -> None:
        if tid == device.Tid and error is None and not called.done():
            called.set_result(time.time())

    sdk.net_config.observe_net_cfg_result(observe)
    token = await sdk.net_config.get_bind_token()
    provisioner = Provisioner(device.Certificate, url, host="127.0.0.1", discoverable=False)
    if mode == "ap":
        joining = asyncio.create_task(provisioner.by_ap())
        endpoint = await provisioner.listening()
        target = LANDevice(device.Tid, product_id, "127.0.0.1", endpoint.port, True, "ap")
        await sdk.net_config.lan.send_wifi("bench", "pass-word", token, device.Tid, device=target)
        client = await joining
    else:
        code = sdk.net_config.qrcode.create("bench", "pass-word", token)
        client = await provisioner.by_qr(as_filmed(code.png, random.Random(device.Tid)))
    try:
        async with asyncio.timeout(10):
            at = await called
    finally:
        await client.stop()
    return (at - provisioner.received_at) * 1000


async def callback_latency(cloud: Cloud, runs: int) -> dict[str, list[float]]:
    vendor = Vendor(cloud)
    devices, _, _ = await asyncio.to_thread(vendor.setup, 2 * runs + 3)
    product_id = (await asyncio.to_thread(vendor, "DescribeDevice", Tid=devices[0].Tid)).Data
    product_id = product_id.ProductId
    user = (await asyncio.to_thread(vendor, "CreateAppUsr", CunionId="unboxer")).AccessId
    token = (
        await asyncio.to_thread(
            vendor, "CreateUsrToken", AccessId=user, UniqueId="bench", TtlMinutes=60
        )
    ).AccessToken
    sdk = IoTVideo()
    sdk.setup(cloud.url)
    await sdk.register(user, token)
    fresh = iter(devices[1:])
    samples: dict[str, list[float]] = {"ap": [], "qr": []}
    try:
        for mode in ("ap", "qr"):
            await provision_once(sdk, next(fresh), product_id, cloud.url, mode)  # warm up
            for i in range(runs):
                ms = await provision_once(sdk, next(fresh), product_id, cloud.url, mode)
                samples[mode].append(ms)
                print(f"\r  {mode}: run {i + 1}/{runs}: {ms:.1f} ms", end="", file=sys.stderr)
            print(file=sys.stderr)
    finally:
        await sdk.unregister()
    return samples


def decode_rate(codes: int, seed: int) -> tuple[int, list[float]]:
    rng = random.Random(seed)
    maker = QRCodeConfig()
    alphabet = string.ascii_letters + string.digits + " !#%&*-_."
    decoded, times = 0, []
    for i in range(codes):
        config = WifiConfig(
            "".join(rng.choices(alphabet, k=rng.randint(1, 32))),
            "".join(rng.choices(alphabet, k=rng.randint(8, 63))),
            "bt_" + secrets.token_urlsafe(32),
        )
        filmed = as_filmed(maker.create(config.ssid, config.password, config.bind_token).png, rng)
        t0 = time.perf_counter()
        try:
            ok = decode_qr(filmed) == config
        except ValueError:
            ok = False
        times.append((time.perf_counter() - t0) * 1000)
        decoded += ok
        print(f"\r  decoded {decoded}/{i + 1}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return decoded, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="provisionings per flow")
    parser.add_argument("--codes", type=int, default=100, help="filmed QR codes to decode")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the distortions")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cloud = Cloud(Path(tmp))
        try:
            print("1. settings received -> app net-config callback (loopback)", file=sys.stderr)
            samples = asyncio.run(callback_latency(cloud, args.runs))
        finally:
            cloud.stop()
    for mode, values in samples.items():
        cuts = statistics.quantiles(values, n=100, method="inclusive")  # no extrapolation
        p50, p90 = cuts[49], cuts[89]
        print(
            f"callback latency {mode.upper()} flow: p50 {p50:.1f} ms p90 {p90:.1f} ms "
            f"max {max(values):.1f} ms over {len(values)} runs"
            f" (target p50 < 500 ms){'' if p50 < 500 else '  MISSED'}"
        )
    print("2. filmed QR codes", file=sys.stderr)
    decoded, times = decode_rate(args.codes, args.seed)
    print(
        f"QR decode rate: {decoded}/{args.codes} ({100 * decoded / args.codes:.0f}%, target 100%);"
        f" decode p50 {statistics.median(times):.1f} ms max {max(times):.1f} ms"
    )


if __name__ == "__main__":
    main()
