"""The gateway's numbers: detection latency, false events, CPU and memory per channel,
time to first frame.

    .venv/bin/python benchmarks/gateway.py [--boxes 10] [--still-minutes 10] [--plays 10]
        [--channels 2] [--seconds 20] [--parts ttff,cpu,detection]

Everything on loopback: a cloud, RTSP cameras (GStreamer's RTSP server, separate
processes) and ``iotvideo gateway`` (a process of its own, so its CPU and memory are its
own); the app runs here.

1. Detection latency: a scripted camera (tests/device/scripted_camera.py) walks a box
   across its picture ``--boxes`` times, 12 s apart; the latency is from the second the
   box enters (the camera's script) to the app receiving the ``Event.motion`` the
   gateway raised for it (after the cloud stored it). p50 and max.
2. False events: a second scripted camera films a still scene with sensor noise and a
   light that rises and falls, for ``--still-minutes``; every event it raises is false.
3. CPU and memory: ``--channels`` channels, each a 1920x1080 30 fps camera passed through
   with motion detected on its 640x360 sub-stream at 5 fps; the gateway's CPU over
   ``--seconds``, per channel, and its RSS per channel over a gateway with no channel.
4. Time to first frame: ``--plays`` plays of a gateway channel (a 640x360 camera passed
   through) and, in the same run, of ``iotvideo device run`` (the demo camera's test
   pattern, 640x360), p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from iotvideo.app import IoTVideo
from iotvideo.app.messages import DeviceMessage
from iotvideo.app.player import MonitorPlayer
from iotvideo.device.gateway.model import gateway_model
from iotvideo.media.webrtc import set_host_addresses
from link import Cloud, Vendor

ROOT = Path(__file__).resolve().parents[1]
SCRIPTED = ROOT / "tests" / "device" / "scripted_camera.py"
BALL = ROOT / "tests" / "live" / "rtsp_server.py"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A helper process that prints ``ready`` once it serves."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(["/usr/bin/python3", *args], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"{args[0]} did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def scripted(channel: int, script: dict[str, Any]) -> tuple[str, Process]:
    port = free_port()
    return f"rtsp://127.0.0.1:{port}/cam", Process(
        str(SCRIPTED), str(port), str(channel), json.dumps(script)
    )


def ball(width: int, height: int, fps: int) -> tuple[str, Process]:
    port = free_port()
    return f"rtsp://127.0.0.1:{port}/cam", Process(
        str(BALL), str(port), str(width), str(height), str(fps)
    )


class Gateway:
    """``iotvideo gateway`` on a config file."""

    def __init__(self, folder: Path, cloud: Cloud, cert: str, channels: list[str]) -> None:
        (folder / "gw.cert").write_text(cert)
        config = folder / "cameras.toml"
        config.write_text(
            f'cloud = "{cloud.url}"\n[[device]]\ncert = "gw.cert"\n' + "".join(channels)
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iotvideo", "gateway", "--config", str(config),
             "--ice-address", "127.0.0.1", "--log-level", "warning"],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            sys.stderr.write(f"  gateway: {line}")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def product(vendor: Vendor, channels: int, devices: int) -> tuple[list[Any], str, str]:
    pid = vendor("CreateProduct", ProductModel="gw", ProductName="gw",
                 ProductDescription="gw").Data.ProductId  # fmt: skip
    vendor("RunIotModel", ProductId=pid, IotModel=json.dumps(gateway_model(channels)))
    made = vendor("CreateDevices", ProductId=pid, Number=devices).Data
    user = vendor("CreateAppUsr", CunionId=f"bench-{time.time_ns()}").AccessId
    for device in made:
        vendor("CreateBinding", AccessId=user, Tid=device.Tid, Role="owner")
    token = vendor("CreateUsrToken", AccessId=user, UniqueId="b", TtlMinutes=600).AccessToken
    return made, user, token


def channel(url: str, *, detect: str | None = None, motion: bool = True, extra: str = "") -> str:
    lines = f'[[device.channel]]\nvideo = "{url}"\n'
    if detect:
        lines += f'detect = "{detect}"\n'
    on = "true" if motion else "false"
    return lines + f"motion = {{ enabled = {on}, cooldown = 3, width = 320{extra} }}\n"


async def online(sdk: IoTVideo, tid: str, channels: int, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        for n in range(1, channels + 1):
            while True:
                state = await sdk.message.read_property(tid, f"ProReadonly.chn{n}")
                if isinstance(state, dict) and state.get("stVal", {}).get("online") == 1:
                    break
                await asyncio.sleep(0.2)


async def detection(args: argparse.Namespace, cloud: Cloud, vendor: Vendor, data: Path) -> None:
    devices, user, token = await asyncio.to_thread(product, vendor, 2, 1)
    tid = devices[0].Tid
    t0 = time.time() + 15
    enters = [t0 + 12 * i for i in range(args.boxes)]
    moving_url, moving = scripted(1, {"boxes": [[t, t + 4, 0.5] for t in enters]})
    still_url, still = scripted(2, {"light": 40, "period": 60})
    gateway = Gateway(data / "a", cloud, devices[0].Certificate,
                      [channel(moving_url), channel(still_url)])  # fmt: skip
    sdk = IoTVideo()
    sdk.setup(cloud.url)
    await sdk.register(user, token)
    got: list[tuple[float, dict[str, Any]]] = []

    def heard(message: DeviceMessage) -> None:
        if message.kind == "event" and message.name == "motion" and "end" not in message.value:
            got.append((time.time(), message.value))

    sdk.message.add_listener(heard)
    try:
        await online(sdk, tid, 2)
        until = max(enters[-1] + 10, time.time() + args.still_minutes * 60)
        print(f"detection: {args.boxes} boxes, then a still scene until "
              f"{args.still_minutes:g} min have passed ...", flush=True)  # fmt: skip
        await asyncio.sleep(max(0.0, until - time.time()))
        latencies = []
        for enter in enters:
            near = [t for t, v in got if v["chn"] == 1 and enter - 1 <= t <= enter + 10]
            if near:
                latencies.append(near[0] - enter)
        false_moving = sum(1 for _, v in got if v["chn"] == 1) - len(latencies)
        false_still = sum(1 for _, v in got if v["chn"] == 2)
        print(f"  detection latency, box on the lens -> Event.motion at the app: "
              f"{len(latencies)}/{len(enters)} detected, p50 {statistics.median(latencies):.2f} s, "
              f"max {max(latencies):.2f} s")  # fmt: skip
        print(f"  false events: {false_still} in {(until - t0 + 15) / 60:.1f} min of the "
              f"still, noisy scene; {false_moving} extra on the moving one")  # fmt: skip
    finally:
        await sdk.unregister()
        gateway.stop()
        moving.stop()
        still.stop()


async def cpu_memory(args: argparse.Namespace, cloud: Cloud, vendor: Vendor, data: Path) -> None:
    devices, user, token = await asyncio.to_thread(product, vendor, args.channels, 2)
    cameras = [(ball(1920, 1080, 30), ball(640, 360, 5)) for _ in range(args.channels)]
    empty = Gateway(data / "b", cloud, devices[1].Certificate,
                    [channel("testsrc:?fps=1", motion=False)])  # fmt: skip
    sdk = IoTVideo()
    sdk.setup(cloud.url)
    await sdk.register(user, token)
    try:
        await online(sdk, devices[1].Tid, 1)
        base = empty.rss_mib()
        empty.stop()
        gateway = Gateway(
            data / "c",
            cloud,
            devices[0].Certificate,
            [channel(main, detect=sub, extra=", fps = 5") for (main, _), (sub, _) in cameras],
        )  # fmt: skip
        try:
            await online(sdk, devices[0].Tid, args.channels)
            await asyncio.sleep(5)  # settled
            before, started = gateway.cpu_seconds(), time.monotonic()
            await asyncio.sleep(args.seconds)
            cores = (gateway.cpu_seconds() - before) / (time.monotonic() - started)
            rss = gateway.rss_mib()
            per = cores / args.channels
            print(f"gateway, {args.channels} channel(s) of 1920x1080 30 fps passed through, "
                  f"motion on a 640x360 sub-stream at 5 fps:")  # fmt: skip
            print(f"  CPU {cores:.3f} cores, {per * 100:.1f}% of a core per channel "
                  f"(one core carries {int(1 / per) if per else 0} such channels)")  # fmt: skip
            print(f"  RSS {rss:.1f} MiB, {(rss - base) / args.channels:.1f} MiB per channel "
                  f"(a gateway with one idle test-pattern channel: {base:.1f} MiB)")  # fmt: skip
            await asyncio.sleep(31)  # the channels' next report of their measured rates
            for n in range(1, args.channels + 1):
                state = await sdk.message.read_property(devices[0].Tid, f"ProReadonly.chn{n}")
                value = state["stVal"]
                print(f"  channel {n} as the gateway measured it: {value['width']}x"
                      f"{value['height']} {value['fps']} fps {value['kbps']} kbps")  # fmt: skip
        finally:
            gateway.stop()
    finally:
        await sdk.unregister()
        for (_, main), (_, sub) in cameras:
            main.stop()
            sub.stop()


async def first_frames(args: argparse.Namespace, cloud: Cloud, vendor: Vendor, data: Path) -> None:
    devices, user, token = await asyncio.to_thread(product, vendor, 1, 1)
    demo = await asyncio.to_thread(vendor.setup)
    url, camera = ball(640, 360, 15)
    gateway = Gateway(data / "d", cloud, devices[0].Certificate, [channel(url, motion=False)])
    cert = data / "demo.cert"
    cert.write_text(demo[0][0].Certificate)
    device_run = subprocess.Popen(  # noqa: ASYNC220 - started once
        [sys.executable, "-m", "iotvideo", "device", "run", "--cert", str(cert), "--cloud",
         cloud.url, "--ice-address", "127.0.0.1", "--log-level", "warning", "--video",
         "testsrc:?definition=mid&fps=15", "--audio", "none"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    sdk = IoTVideo()
    sdk.setup(cloud.url)
    await sdk.register(user, token)
    demo_sdk = IoTVideo()
    demo_sdk.setup(cloud.url)
    await demo_sdk.register(demo[1], demo[2])
    try:
        await online(sdk, devices[0].Tid, 1)
        results = {}
        for name, who, tid in (("gateway channel", sdk, devices[0].Tid),
                               ("iotvideo device run", demo_sdk, demo[0][0].Tid)):  # fmt: skip
            samples: list[float] = []
            while len(samples) < args.plays + 1:
                player = MonitorPlayer(tid, sdk=who, definition="mid")
                try:
                    await player.play()
                    await player.wait_playing()
                    samples.append(player.trace["first_frame"])
                except Exception:  # the demo camera still logging in
                    await asyncio.sleep(0.5)
                finally:
                    await player.stop()
            results[name] = samples[1:]  # the first warms the path up
        print(f"time to first frame, 640x360, {args.plays} plays (ms):")
        for name, samples in results.items():
            print(f"  {name:22s} p50 {statistics.median(samples):6.1f}")
    finally:
        await sdk.unregister()
        await demo_sdk.unregister()
        gateway.stop()
        device_run.terminate()
        device_run.wait(30)
        camera.stop()


async def run(args: argparse.Namespace, cloud: Cloud, data: Path) -> None:
    set_host_addresses(["127.0.0.1"])
    vendor = Vendor(cloud)
    parts = {"ttff": first_frames, "cpu": cpu_memory, "detection": detection}
    for name in args.parts.split(","):
        part = parts[name]
        folder = data
        for sub in "abcd":
            (folder / sub).mkdir(exist_ok=True)
        await part(args, cloud, vendor, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--still-minutes", type=float, default=10.0)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--plays", type=int, default=10)
    parser.add_argument(
        "--parts", default="ttff,cpu,detection", help="which parts to run, comma-separated"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cloud = Cloud(Path(tmp) / "cloud")
        try:
            asyncio.run(run(args, cloud, Path(tmp)))
        finally:
            cloud.stop()


if __name__ == "__main__":
    main()
