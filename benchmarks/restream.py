"""Restream's numbers: RTSP connect to first frame, added glass-to-glass latency over RTSP
against the WebRTC player, RTSP clients per core, memory per client.

    .venv/bin/python benchmarks/restream.py [--plays 10] [--frames 60]
        [--clients 0,10,20,40] [--seconds 15]

Everything on loopback, each part a process of its own: a cloud, the simulated camera
(`iotvideo device run`, its test pattern 640x360 at 15 fps with the time it was taken
burned in), `iotvideo restream`, and the clients (PyAV here; ffmpeg processes for the
load).

1. Connect to first frame: ``--plays`` RTSP opens (PyAV over TCP) to the first decoded
   picture, with the camera's pull already running and after the idle time, when the
   open starts the pull; a quick client (no probing) and one with FFmpeg's defaults. p50.
2. Glass to glass: the age of each decoded picture (now minus its burned-in time) through
   RTSP and, in the same run, through the app SDK's WebRTC player. p50 of ``--frames``
   each, and the difference: what restream adds.
3. Clients per core: ``--clients`` ffmpeg readers (``-c copy -f null``) on one camera;
   restream's CPU over ``--seconds`` and its RSS, per client; one core's worth of clients.
4. Per-camera work, here in this process (``--costs`` alone runs only this part): the
   audio transcoding to AAC (CPU per 20 ms of Opus and of PCMU, decode, resample and
   encode), and MJPEG (H.264 decode per frame, one JPEG) at 640x360 and 1920x1080.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from iotvideo.app import IoTVideo
from iotvideo.media.testsrc import read_stamp
from iotvideo.media.webrtc import set_host_addresses
from link import Cloud, Vendor
from live import glass_to_glass

PASSWORD = "bench-password"  # noqa: S105 - the benchmark's own


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


#: A client that starts at once (ffplay's -fflags nobuffer -probesize 32
#: -analyzeduration 0). With FFmpeg's defaults a client reads ~2 s of stream to probe it
#: before it hands out a picture, whatever the server, then decodes that backlog.
QUICK = {"rtsp_transport": "tcp", "probesize": "32", "analyzeduration": "0", "fflags": "nobuffer"}
DEFAULT = {"rtsp_transport": "tcp"}


def first_frame_ms(url: str, options: dict[str, str]) -> float:
    """Open ``url`` over RTSP/TCP and decode: milliseconds to the first picture."""
    t0 = time.monotonic()
    with av.open(url, options=options, timeout=15) as container:
        for _frame in container.decode(video=0):
            return (time.monotonic() - t0) * 1000
    raise RuntimeError("no picture")


def rtsp_ages(url: str, frames: int) -> list[float]:
    """The age (ms) of ``frames`` decoded pictures, once the client has decoded what it
    buffered while it opened (from 3 s on)."""
    ages: list[float] = []
    with av.open(url, options=QUICK, timeout=15) as container:
        t0 = time.monotonic()
        # One decoding thread, as the player's decoder: frame threads hold pictures back.
        container.streams.video[0].thread_count = 1
        for frame in container.decode(video=0):
            now = time.time() * 1000
            if time.monotonic() - t0 < 3.0:
                continue
            stamp = read_stamp(frame.to_ndarray(format="gray"))
            if stamp is not None:
                ages.append(now - stamp.time_ms)
            if len(ages) >= frames:
                break
    return ages


async def run(args: argparse.Namespace, cloud: Cloud, data: Path) -> None:
    set_host_addresses(["127.0.0.1"])
    vendor = Vendor(cloud)
    made, user, token = await asyncio.to_thread(vendor.setup)
    tid = made[0].Tid
    cert = data / "camera.cert"
    cert.write_text(made[0].Certificate)
    camera = subprocess.Popen(  # noqa: ASYNC220 - started once
        [sys.executable, "-m", "iotvideo", "device", "run", "--cert", str(cert), "--cloud",
         cloud.url, "--ice-address", "127.0.0.1", "--log-level", "warning", "--video",
         "testsrc:?definition=mid&fps=15", "--audio", "none"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    rtsp_port, http_port = free_port(), free_port()
    idle = 2.0
    restream = subprocess.Popen(  # noqa: ASYNC220 - started once
        [sys.executable, "-m", "iotvideo", "restream", "--cloud", cloud.url,
         "--access-id", user, "--host", "127.0.0.1", "--rtsp-port", str(rtsp_port),
         "--http-port", str(http_port), "--rtsp-user", "bench", "--idle", str(idle),
         "--ice-address", "127.0.0.1", "--log-level", "warning"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "IOTVIDEO_ACCESS_TOKEN": token,
             "IOTVIDEO_RESTREAM_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert restream.stdout is not None
    threading.Thread(target=restream.stdout.read, daemon=True).start()
    url = f"rtsp://bench:{PASSWORD}@127.0.0.1:{rtsp_port}/{tid}"
    sdk = IoTVideo()
    sdk.setup(cloud.url)
    await sdk.register(user, token)
    readers: list[subprocess.Popen[Any]] = []
    try:
        # The camera logs in and restream listens: the first open that plays.
        deadline = time.monotonic() + 60
        while True:
            try:
                await asyncio.to_thread(first_frame_ms, url, QUICK)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        # 1. Connect to first frame, warm (a pull running) and cold (after the idle time).
        holder = subprocess.Popen(  # noqa: ASYNC220 - keeps the pull running
            ["ffmpeg", "-v", "quiet", "-rtsp_transport", "tcp", "-i", url, "-c", "copy",
             "-f", "null", "-"], stdin=subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.sleep(2)
        warm = {
            name: [await asyncio.to_thread(first_frame_ms, url, o) for _ in range(args.plays)]
            for name, o in (("quick client", QUICK), ("FFmpeg's defaults", DEFAULT))
        }
        holder.terminate()
        holder.wait(10)
        cold = []
        for _ in range(args.plays):
            await asyncio.sleep(idle + 2)  # the pull has stopped
            cold.append(await asyncio.to_thread(first_frame_ms, url, QUICK))
        print(f"RTSP connect to first frame, 640x360 15 fps, {args.plays} opens (ms, p50):")
        for name, samples in warm.items():
            print(f"  pull running, {name:18s} {statistics.median(samples):7.1f}")
        print(f"  starting the pull, quick client    {statistics.median(cold):7.1f}")
        # 2. Glass to glass.
        over_rtsp = await asyncio.to_thread(rtsp_ages, url, args.frames)
        over_webrtc = await glass_to_glass(sdk, tid, args.frames)
        rtsp_p50, webrtc_p50 = statistics.median(over_rtsp), statistics.median(over_webrtc)
        print(f"glass to glass, {args.frames} pictures each (ms): WebRTC player p50 "
              f"{webrtc_p50:.1f}, RTSP through restream p50 {rtsp_p50:.1f}, "
              f"added {rtsp_p50 - webrtc_p50:.1f}")  # fmt: skip
        # 3. Clients per core.
        print(f"restream CPU and memory, 640x360 15 fps camera, {args.seconds:g} s each:")
        base_cpu = base_rss = 0.0
        for count in (int(c) for c in args.clients.split(",")):
            command = ["ffmpeg", "-v", "quiet", "-rtsp_transport", "tcp", "-i", url,
                       "-c", "copy", "-f", "null", "-"]  # fmt: skip
            while len(readers) < count:
                readers.append(subprocess.Popen(command, stdin=subprocess.DEVNULL))  # noqa: ASYNC220
            await asyncio.sleep(3)  # all connected
            c0 = cpu_seconds(restream.pid)
            await asyncio.sleep(args.seconds)
            cpu = (cpu_seconds(restream.pid) - c0) / args.seconds * 100
            rss = rss_mib(restream.pid)
            if count == 0:
                base_cpu, base_rss = cpu, rss
                print(f"  {count:3d} clients: {cpu:5.1f}% of a core, RSS {rss:6.1f} MiB")
                continue
            per_cpu = (cpu - base_cpu) / count
            per_rss = (rss - base_rss) / count
            per_core = 100 / per_cpu if per_cpu > 0 else float("inf")
            print(f"  {count:3d} clients: {cpu:5.1f}% of a core, RSS {rss:6.1f} MiB; "
                  f"per client {per_cpu:.2f}% and {per_rss:.2f} MiB; "
                  f"one core: ~{per_core:.0f} clients")  # fmt: skip
    finally:
        for reader in readers:
            reader.terminate()
        for reader in readers:
            reader.wait(10)
        await sdk.unregister()
        restream.terminate()
        restream.wait(30)
        camera.terminate()
        camera.wait(30)


def costs() -> None:
    """Part 4: CPU seconds of the per-camera work, whatever the number of clients."""
    import numpy as np

    from iotvideo.app.player import EncodedPacket
    from iotvideo.app.restream.audio import AacTranscoder
    from iotvideo.media.audio import AudioEncoder, Tone
    from iotvideo.media.h264 import H264Decoder
    from iotvideo.media.recorder import encode_picture

    async def transcode(codec: str, mime: str, rate: int, packets: int = 500) -> float:
        encoder, tone = AudioEncoder(codec), Tone(rate=rate)
        data = [bytes(p) for _ in range(packets) for p in encoder.encode(tone.next_samples())]
        out: list[EncodedPacket] = []
        transcoder = AacTranscoder("bench", out.append)
        began = time.process_time()
        for i, d in enumerate(data):
            transcoder._transcode(EncodedPacket(mime, d, i * 1800, False, 0.0))
        spent = time.process_time() - began
        transcoder.close()
        return spent / len(data)

    for codec, mime, rate in (("opus", "audio/opus", 48_000), ("pcmu", "audio/PCMU", 8_000)):
        each = asyncio.run(transcode(codec, mime, rate))
        print(f"AAC from {codec}: {each * 1000:.3f} ms of CPU per 20 ms ({each / 0.02:.1%})")
    for width, height in ((640, 360), (1920, 1080)):
        encoder: Any = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.time_base = Fraction(1, 15)
        encoder.options = {"tune": "zerolatency", "preset": "ultrafast"}
        rng = np.random.default_rng(1)
        base = rng.integers(0, 4, (height, width, 3), dtype=np.uint8) * 64
        units = []
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 4 * i, axis=1), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            units += [bytes(p) for p in encoder.encode(frame)]
        decoder, decoded = H264Decoder(), []
        began = time.process_time()
        for i, unit in enumerate(units):
            decoded += decoder.decode(unit, i)
        decode = (time.process_time() - began) / len(units)
        began = time.process_time()
        for frame in decoded[:20]:
            encode_picture(frame, "jpeg")
        jpeg = (time.process_time() - began) / 20
        print(
            f"MJPEG {width}x{height}: decode {decode * 1000:.2f} ms per frame, JPEG "
            f"{jpeg * 1000:.1f} ms; at 15 fps with 5 JPEGs a second, "
            f"{15 * decode + 5 * jpeg:.1%} of a core"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--costs", action="store_true", help="only part 4")
    parser.add_argument("--plays", type=int, default=10)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--clients", default="0,10,20,40")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    costs()
    if args.costs:
        return
    with tempfile.TemporaryDirectory() as tmp:
        cloud = Cloud(Path(tmp) / "cloud")
        try:
            asyncio.run(run(args, cloud, Path(tmp)))
        finally:
            cloud.stop()


if __name__ == "__main__":
    main()
