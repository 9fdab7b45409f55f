"""Live media numbers: time to first frame, glass-to-glass latency, CPU per viewer.

    .venv/bin/python benchmarks/live.py [--plays 20] [--viewers 30] [--seconds 5]

Everything on loopback; the cloud and the camera (`iotvideo device run`, 640x360 at
15 fps, "mid") are separate processes, the app players run here.

1. Time to first decoded frame over ``--plays`` plays through the cloud (signaling over
   the link, ICE, DTLS, first keyframe, decode), p50/p95: with the camera's encoder idle
   (each play is its only viewer, so the source starts for it) and warm (another viewer
   keeps it running). Baseline in the same run: a bare aiortc pair in this process, the
   answerer sending 640x360 frames at 15 fps through aiortc's own H.264 encoder, signaled
   directly (no cloud), from createOffer to the first frame its track returns.
2. Glass-to-glass: the camera stamps each picture with the time it is taken (the test
   pattern's strip); the player reads it back from the decoded frame as the renderer
   gets it. Both clocks are this machine's. p50 over ``--frames`` frames.
3. CPU per viewer on the camera: its process CPU with 0 viewers and with ``--viewers``
   receive-only viewers (their decoder module is a no-op, so this process keeps up),
   over ``--seconds``; the difference per viewer, and the viewers one camera core serves.
   App side: this process's CPU with one viewer decoding 640x360 at 15 fps.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
from aiortc import RTCPeerConnection, VideoStreamTrack

from iotvideo.app import IoTVideo
from iotvideo.app.player import MonitorPlayer
from iotvideo.media.testsrc import Stamp, TestPattern, read_stamp
from iotvideo.media.webrtc import codecs_of, rtc_configuration, set_host_addresses
from iotvideo.protocol.media import MAX_CONNECTION_NUM
from link import Cloud, Vendor, run_with_cloud


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


class Camera:
    def __init__(self, cloud: Cloud, certificate: str, data: Path) -> None:
        cert = data / "camera.cert"
        cert.write_text(certificate + "\n")
        cmd = [
            sys.executable,
            "-m",
            "iotvideo",
            "device",
            "run",
            "--cert",
            str(cert),
            "--cloud",
            cloud.url,
            "--ice-address",
            "127.0.0.1",
            "--max-viewers",
            "100",
            "--log-level",
            "warning",
            "--motion-interval",
            "3600",
        ]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if " connecting to " in line:
                break
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class NullDecoder:
    """A viewer that receives and decrypts everything but decodes nothing."""

    def decode(self, data: bytes, pts: int) -> list[av.VideoFrame]:
        return []


async def first_frames(sdk: IoTVideo, tid: str, plays: int, *, warm: bool) -> list[float]:
    keeper = None
    if warm:
        keeper = MonitorPlayer(tid, sdk=sdk, definition="mid")
        keeper.video_decoder = NullDecoder()
        await keeper.play()
    samples = []
    for _ in range(plays):
        player = MonitorPlayer(tid, sdk=sdk, definition="mid")
        await player.play()
        await player.wait_playing()
        samples.append(player.trace["first_frame"])
        await player.stop()
    if keeper is not None:
        await keeper.stop()
    return samples


class PatternTrack(VideoStreamTrack):
    """640x360 test pattern at 15 fps, for aiortc to encode itself."""

    def __init__(self) -> None:
        super().__init__()
        self.pattern = TestPattern(640, 360)
        self.count = 0
        self.start = time.monotonic()

    async def recv(self) -> av.VideoFrame:
        due = self.start + self.count / 15
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        image = self.pattern.frame(Stamp(int(time.time() * 1000), self.count))
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = self.count * 6000, Fraction(1, 90_000)
        self.count += 1
        return frame


async def bare_first_frames(plays: int) -> list[float]:
    samples = []
    for _ in range(plays):
        t0 = time.monotonic()
        viewer, camera = (
            RTCPeerConnection(rtc_configuration()),
            RTCPeerConnection(rtc_configuration()),
        )
        transceiver = viewer.addTransceiver("video", direction="recvonly")
        transceiver.setCodecPreferences(codecs_of("video", "video/H264"))
        await viewer.setLocalDescription(await viewer.createOffer())
        await camera.setRemoteDescription(viewer.localDescription)
        camera.addTrack(PatternTrack())
        await camera.setLocalDescription(await camera.createAnswer())
        await viewer.setRemoteDescription(camera.localDescription)
        await asyncio.wait_for(transceiver.receiver.track.recv(), 10)
        samples.append((time.monotonic() - t0) * 1000)
        await viewer.close()
        await camera.close()
    return samples


async def glass_to_glass(sdk: IoTVideo, tid: str, frames: int) -> list[float]:
    player = MonitorPlayer(tid, sdk=sdk, definition="mid")
    latencies: list[float] = []
    done = asyncio.Event()

    def on_frame(frame: av.VideoFrame) -> None:
        now = time.time() * 1000
        stamp = read_stamp(frame.to_ndarray(format="gray"))
        if stamp is not None:
            latencies.append(now - stamp.time_ms)
        if len(latencies) >= frames:
            done.set()

    player.video_render.callbacks.append(on_frame)  # type: ignore[attr-defined]
    await player.play()
    await asyncio.wait_for(done.wait(), frames / 10 + 10)
    await player.stop()
    return latencies[5:]


async def camera_cpu(
    sdk: IoTVideo, tid: str, camera: Camera, viewers: int, seconds: float
) -> float:
    """The camera's CPU share (cores) with ``viewers`` receive-only viewers (spread over
    app SDK instances: one holds at most MAX_CONNECTION_NUM connections)."""
    sdks = [sdk]
    players = []
    for n in range(viewers):
        if n and n % MAX_CONNECTION_NUM == 0:
            extra = IoTVideo()
            extra.setup(sdk._urls)
            await extra.register(sdk.access_id, sdk._token)  # type: ignore[attr-defined]
            sdks.append(extra)
        player = MonitorPlayer(tid, sdk=sdks[-1], definition="mid")
        player.video_decoder = NullDecoder()
        await player.play()
        players.append(player)
    await asyncio.sleep(1)  # let every viewer settle to the steady state
    c0, t0 = proc_cpu(camera.proc.pid), time.monotonic()
    await asyncio.sleep(seconds)
    share = (proc_cpu(camera.proc.pid) - c0) / (time.monotonic() - t0)
    for player in players:
        await player.stop()
    for extra in sdks[1:]:
        await extra.unregister()
    return share


async def app_cpu(sdk: IoTVideo, tid: str, seconds: float) -> float:
    player = MonitorPlayer(tid, sdk=sdk, definition="mid")
    await player.play()
    await player.wait_playing()
    c0, t0 = own_cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    share = (own_cpu() - c0) / (time.monotonic() - t0)
    frames = player.frames_decoded
    await player.stop()
    assert frames > seconds * 12, f"only {frames} frames decoded"
    return share


async def run(args: argparse.Namespace, cloud: Cloud, data: Path) -> None:
    set_host_addresses(["127.0.0.1"])
    vendor = Vendor(cloud)
    devices, user, token = await asyncio.to_thread(vendor.setup)
    camera = Camera(cloud, devices[0].Certificate, data)
    tid = devices[0].Tid
    sdk = IoTVideo()
    sdk.setup(cloud.url)
    await sdk.register(user, token)
    sdk._token = token  # type: ignore[attr-defined]
    try:
        while True:  # until the camera is online
            try:
                await first_frames(sdk, tid, 1, warm=False)
                break
            except Exception:
                await asyncio.sleep(0.2)
        await bare_first_frames(2)  # warm up aiortc's codecs in this process

        cold = await first_frames(sdk, tid, args.plays, warm=False)
        warm = await first_frames(sdk, tid, args.plays, warm=True)
        bare = await bare_first_frames(args.plays)
        print(f"time to first decoded frame, 640x360 15 fps, {args.plays} plays (ms):")
        for name, samples in (
            ("through the cloud, idle source", cold),
            ("through the cloud, warm source", warm),
            ("bare aiortc pair (baseline)", bare),
        ):
            p50, p95 = quantiles(samples)
            print(f"  {name:34s} p50 {p50:6.1f}  p95 {p95:6.1f}")
        print(
            f"  ratio to baseline (p50): idle {quantiles(cold)[0] / quantiles(bare)[0]:.2f}x, "
            f"warm {quantiles(warm)[0] / quantiles(bare)[0]:.2f}x"
        )

        g2g = await glass_to_glass(sdk, tid, args.frames)
        p50, p95 = quantiles(g2g)
        print(
            f"glass-to-glass, {len(g2g)} frames (ms): p50 {p50:.1f}  p95 {p95:.1f}"
            f"  (one frame interval at 15 fps: 66.7)"
        )

        idle = await camera_cpu(sdk, tid, camera, 0, args.seconds)
        one = await camera_cpu(sdk, tid, camera, 1, args.seconds)
        many = await camera_cpu(sdk, tid, camera, args.viewers, args.seconds)
        per_viewer = (many - one) / (args.viewers - 1)
        print(
            f"camera CPU (cores): no viewer {idle:.3f}, 1 viewer {one:.3f} "
            f"(the encoder), {args.viewers} viewers {many:.3f}"
        )
        print(
            f"  per extra viewer {per_viewer * 1000:.1f} ms/s; one camera core serves "
            f"{(1 - (one - per_viewer)) / per_viewer:.0f} viewers of this stream"
        )
        app = await app_cpu(sdk, tid, args.seconds)
        print(f"app CPU, one viewer decoding 640x360 15 fps: {app:.3f} cores")
    finally:
        await sdk.unregister()
        camera.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plays", type=int, default=20)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--viewers", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    run_with_cloud(run, args)


if __name__ == "__main__":
    main()
