"""Memory-card numbers: seek to first frame, download throughput, device CPU for playback
and for recording.

    .venv/bin/python benchmarks/playback.py [--seeks 30] [--downloads 5] [--seconds 20]
        [--minutes 3] [--file-seconds 60]

Everything on loopback; the cloud and the camera (`iotvideo device run --sd-dir`, whose
card holds a 640x360 15 fps test-pattern recording written beforehand) are separate
processes, the app runs here.

1. Seek: one PlaybackPlayer; ``--seeks`` seeks to random times of random files; from the
   call to the first decoded frame carrying the time the device landed on (p50/p95). Also
   play() to the first frame.
2. Download: a 60 s file ``--downloads`` times (MB/s); beside it, the data channel's own
   ceiling on this machine: a bare aiortc pair in this process sending the same bytes in
   the same 60000-byte messages with the same flow control.
3. Camera CPU (cores) while it records (no viewer), and with one playback viewer at 1x and
   at 32x, each over ``--seconds``.
4. Recording overhead: the camera's CPU with one live viewer at 640x360, without a card and
   with one (the same encoder runs in both; the difference is the recorder).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from aiortc import RTCPeerConnection, RTCSessionDescription

from iotvideo.app import IoTVideo
from iotvideo.app.playback import FileDownloader, PlaybackPlayer, get_playback_list
from iotvideo.app.player import MonitorPlayer
from iotvideo.device.card import Card, fill_test_recording
from iotvideo.media.webrtc import rtc_configuration, set_host_addresses
from link import Cloud, Vendor, run_with_cloud
from live import NullDecoder, proc_cpu

CHUNK = 60_000


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


class Camera:
    def __init__(self, cloud: Cloud, certificate: str, data: Path, *extra: str) -> None:
        cert = data / "camera.cert"
        cert.write_text(certificate + "\n")
        cmd = [sys.executable, "-m", "iotvideo", "device", "run", "--cert", str(cert)]
        cmd += ["--cloud", cloud.url, "--ice-address", "127.0.0.1", "--log-level", "warning"]
        cmd += ["--motion-interval", "3600", *extra]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if " connecting to " in line:
                break
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def share(camera: Camera, seconds: float) -> float:
    c0, t0 = camera.cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    return (camera.cpu() - c0) / (time.monotonic() - t0)


async def online(sdk: IoTVideo, tid: str) -> None:
    for _ in range(100):
        try:
            await get_playback_list(tid, 0, sdk=sdk)
            return
        except Exception:
            await asyncio.sleep(0.2)
    raise SystemExit("the camera did not come online")


async def seeks(
    sdk: IoTVideo, tid: str, count: int, start: int, end: int
) -> tuple[float, list[float]]:
    rng = random.Random(7)
    player = PlaybackPlayer(tid, None, start + 5000, sdk=sdk)
    t0 = time.monotonic()
    await player.play()
    await player.wait_playing()
    first = (time.monotonic() - t0) * 1000
    samples = []
    wanted: dict[str, int] = {}
    shown = asyncio.Event()

    def on_position(at: int) -> None:
        if at == wanted.get("time"):
            shown.set()

    player.delegate = type(
        "D", (), {"player_did_update_position": lambda _s, _p, at: on_position(at)}
    )()
    for _ in range(count):
        target = rng.randrange(start + 1000, end - 5000)
        shown.clear()
        wanted.clear()
        t0 = time.monotonic()
        wanted["time"] = await player.seek(target)
        if player.position != wanted["time"]:
            await asyncio.wait_for(shown.wait(), 10)
        samples.append((time.monotonic() - t0) * 1000)
    await player.stop()
    return first, samples


async def downloads(sdk: IoTVideo, tid: str, file_time: int, count: int) -> tuple[int, list[float]]:
    rates = []
    size = 0
    for _ in range(count):
        downloader = FileDownloader(tid, sdk=sdk)
        await downloader.connect()
        t0 = time.monotonic()
        result = await downloader.download(file_time, on_data=lambda _d: None)
        rates.append(result.received / (time.monotonic() - t0) / 1e6)
        size = result.size
        await downloader.stop()
    return size, rates


def receiver(size: int) -> tuple[RTCPeerConnection, asyncio.Event]:
    """A peer that counts what its data channel receives; the event once ``size`` bytes
    have arrived."""
    peer = RTCPeerConnection(rtc_configuration())
    done = asyncio.Event()
    received = 0

    @peer.on("datachannel")
    def on_channel(remote: object) -> None:
        @remote.on("message")  # type: ignore[attr-defined]
        def on_message(message: bytes) -> None:
            nonlocal received
            received += len(message)
            if received >= size:
                done.set()

    return peer, done


async def bare_channel(size: int, *, two_processes: bool) -> float:
    """MB/s of a bare aiortc data channel: the sender here, the receiver in this process
    or in a child process (as the app and the camera are)."""
    set_host_addresses(["127.0.0.1"])
    a = RTCPeerConnection(rtc_configuration())
    channel = a.createDataChannel("file")
    done = asyncio.Event()
    child: asyncio.subprocess.Process | None = None
    b: RTCPeerConnection | None = None
    await a.setLocalDescription(await a.createOffer())
    if two_processes:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--bare-receiver",
            str(size),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps({"sdp": a.localDescription.sdp}).encode() + b"\n")
        await child.stdin.drain()
        answer = json.loads(await child.stdout.readline())["sdp"]
        await a.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        out = child.stdout

        async def wait_done() -> None:
            await out.readline()
            done.set()
    else:
        b, done = receiver(size)
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)

        async def wait_done() -> None:
            await done.wait()

    opened = asyncio.Event()
    channel.on("open", opened.set)
    await asyncio.wait_for(opened.wait(), 10)
    drained = asyncio.Event()
    channel.bufferedAmountLowThreshold = 1 << 19
    channel.on("bufferedamountlow", drained.set)
    payload = bytes(CHUNK)
    waiter = asyncio.ensure_future(wait_done())
    t0 = time.monotonic()
    sent = 0
    while sent < size:
        if channel.bufferedAmount > 1 << 20:
            drained.clear()
            await drained.wait()
            continue
        channel.send(payload)
        sent += CHUNK
    await asyncio.wait_for(waiter, 60)
    rate = sent / (time.monotonic() - t0) / 1e6
    await a.close()
    if b is not None:
        await b.close()
    if child is not None:
        await child.wait()
    return rate


async def bare_receiver(size: int) -> None:
    """The child of ``bare_channel``: answers the offer on stdin, prints a line once
    ``size`` bytes have arrived."""
    set_host_addresses(["127.0.0.1"])
    loop = asyncio.get_running_loop()
    offer = json.loads(await loop.run_in_executor(None, sys.stdin.readline))["sdp"]
    b, done = receiver(size)
    await b.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    await b.setLocalDescription(await b.createAnswer())
    print(json.dumps({"sdp": b.localDescription.sdp}), flush=True)
    await asyncio.wait_for(done.wait(), 120)
    print("done", flush=True)
    await b.close()


async def playback_cpu(
    sdk: IoTVideo, tid: str, camera: Camera, at: int, speed: float, seconds: float
) -> float:
    player = PlaybackPlayer(tid, None, at, sdk=sdk, speed=speed)
    player.video_decoder = NullDecoder()  # type: ignore[assignment]
    await player.play()
    await asyncio.sleep(1)
    cpu = await share(camera, seconds)
    await player.stop()
    return cpu


async def live_cpu(sdk: IoTVideo, tid: str, camera: Camera, seconds: float) -> float:
    player = MonitorPlayer(tid, sdk=sdk, definition="mid")
    player.video_decoder = NullDecoder()
    await player.play()
    await asyncio.sleep(1.5)
    cpu = await share(camera, seconds)
    await player.stop()
    return cpu


async def run(args: argparse.Namespace, cloud: Cloud, data: Path) -> None:
    set_host_addresses(["127.0.0.1"])
    vendor = Vendor(cloud)
    devices, user, token = await asyncio.to_thread(vendor.setup)
    tid = devices[0].Tid
    sd = data / "sd"
    card = Card(sd, file_seconds=args.file_seconds)
    card.mount()
    start = (int(time.time()) - 3600) * 1000
    print(f"writing {args.minutes} min of 640x360 15 fps recording to the card ...", flush=True)
    t0 = time.monotonic()
    await asyncio.to_thread(fill_test_recording, card, start, args.minutes * 60, size=(640, 360))
    card.close()
    print(f"  done in {time.monotonic() - t0:.1f} s")
    end = start + args.minutes * 60_000
    sdk = IoTVideo()
    sdk.setup(cloud.url)
    await sdk.register(user, token)
    camera = Camera(
        cloud,
        devices[0].Certificate,
        data,
        "--sd-dir",
        str(sd),
        "--sd-file-seconds",
        str(args.file_seconds),
    )
    try:
        await online(sdk, tid)
        first, samples = await seeks(sdk, tid, args.seeks, start, end)
        p50, p95 = quantiles(samples)
        print(f"play() to first frame: {first:.1f} ms")
        print(f"seek to first frame, {len(samples)} seeks (ms): p50 {p50:.1f}  p95 {p95:.1f}")

        page = await get_playback_list(tid, start, end, sdk=sdk)
        middle = page.items[len(page.items) // 2].start_time
        size, rates = await downloads(sdk, tid, middle, args.downloads)
        print(
            f"download of a {size / 1e6:.1f} MB file, {len(rates)} runs (MB/s): "
            f"median {statistics.median(rates):.1f}, best {max(rates):.1f} "
            f"({', '.join(f'{r:.1f}' for r in rates)})"
        )
        for two in (False, True):
            ceiling = statistics.median(
                [await bare_channel(size, two_processes=two) for _ in range(3)]
            )
            where = "in two processes" if two else "both in this process"
            print(f"  bare aiortc data channel, the same bytes, peers {where}: {ceiling:.1f} MB/s")

        idle = await share(camera, args.seconds)
        one = await playback_cpu(sdk, tid, camera, start + 1000, 1.0, args.seconds)
        fast = await playback_cpu(sdk, tid, camera, start + 1000, 32.0, args.seconds)
        print(
            f"camera CPU (cores): recording, no viewer {idle:.3f}; one playback viewer "
            f"at 1x {one:.3f} (+{one - idle:.3f}), at 32x {fast:.3f} (+{fast - idle:.3f})"
        )
        with_card = await live_cpu(sdk, tid, camera, args.seconds)
    finally:
        camera.stop()
    plain = Camera(cloud, devices[0].Certificate, data)
    try:
        await asyncio.sleep(2)
        without_card = await live_cpu(sdk, tid, plain, args.seconds)
    finally:
        plain.stop()
        await sdk.unregister()
    print(
        f"recording overhead, one live viewer at 640x360 15 fps: camera {without_card:.3f} "
        f"cores without a card, {with_card:.3f} with one: "
        f"{(with_card - without_card) * 100:+.1f}% of a core"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeks", type=int, default=30)
    parser.add_argument("--downloads", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--file-seconds", type=int, default=60, help="length of a card file")
    parser.add_argument("--bare-receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_receiver:
        asyncio.run(bare_receiver(args.bare_receiver))
        return
    run_with_cloud(run, args)


if __name__ == "__main__":
    main()
