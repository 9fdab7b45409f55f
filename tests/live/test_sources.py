"""Pass-through sources (an RTSP camera, an MP4 file) and the TURN relay, with real
servers started by the tests on loopback."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from iotvideo.app.modules import VideoDecoder
from iotvideo.app.player import MonitorPlayer
from iotvideo.media.fanout import Viewer
from iotvideo.media.sources import DemuxVideoStream
from iotvideo.protocol.errors import ErrorCode
from tests.link.world import World, make_world
from tests.live.helpers import live, take_frames
from tests.support import start_cloud

HERE = Path(__file__).parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KeepingDecoder(VideoDecoder):
    """The built-in decoder, keeping the access units it was given (the app's view)."""

    def __init__(self) -> None:
        super().__init__()
        self.units: list[bytes] = []

    def decode(self, data: bytes, pts: int) -> list[av.VideoFrame]:
        self.units.append(data)
        return super().decode(data, pts)


async def collect(viewer: Viewer, into: list[bytes]) -> None:
    async for packet in viewer:
        into.append(packet.data)


async def assert_passed_through(world, video: str, size: tuple[int, int]) -> None:
    """The app decodes frames of ``size`` whose bytes are exactly what the device read."""
    async with live(world, video=video, audio="none") as lv:
        stream = lv.media.channels["1"].video.stream("low")
        assert isinstance(stream, DemuxVideoStream)  # read and passed on, never encoded
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        decoder = KeepingDecoder()
        player.video_decoder = decoder
        await player.play()
        read: list[bytes] = []
        tap = stream.add_viewer()
        collecting = asyncio.ensure_future(collect(tap, read))
        frames = await take_frames(player, 20)
        await player.stop()
        stream.remove_viewer(tap)
        await collecting
    assert {(f.width, f.height) for f in frames} == {size}
    shared = set(decoder.units) & set(read)
    assert len(shared) >= 10, "the app's access units are not the bytes the device read"


@pytest.fixture
def rtsp_camera(rtsp_camera_proc: tuple[str, subprocess.Popen[str]]) -> str:
    return rtsp_camera_proc[0]


@pytest.fixture
def rtsp_camera_proc() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """GStreamer's RTSP server with a 320x240 H.264 test stream: (URL, process)."""
    port = free_port()
    server = subprocess.Popen(
        ["/usr/bin/python3", str(HERE / "rtsp_server.py"), str(port), "320", "240"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield f"rtsp://127.0.0.1:{port}/cam", server
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()


async def test_an_rtsp_camera_is_passed_through(world, rtsp_camera: str) -> None:
    await assert_passed_through(world, rtsp_camera, (320, 240))


@pytest.fixture(params=["mp4", "ts"])
def clip(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """One second of H.264 at 352x288 in an MP4 or an MPEG-TS, made by Debian's ffmpeg."""
    clip = tmp_path / f"clip.{request.param}"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=352x288:rate=15",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-g",
            "15",
            "-pix_fmt",
            "yuv420p",
            str(clip),
        ],
        check=True,
    )
    return clip


async def test_a_file_is_passed_through_and_looped(world, clip: Path) -> None:
    # 20 frames of a 15-frame file: it loops, and the clock carries on.
    await assert_passed_through(world, f"file:{clip}", (352, 288))


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """coturn on loopback with a TURN REST shared secret: (port, secret)."""
    port, secret = free_port(socket.SOCK_DGRAM), secrets.token_hex(8)
    server = subprocess.Popen(
        [
            "turnserver",
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--allow-loopback-peers",
            "--no-tls",
            "--no-dtls",
            "--no-tcp",
            "--use-auth-secret",
            f"--static-auth-secret={secret}",
            "--realm=iotvideo.test",
            "--no-cli",
            "--min-port=49160",
            "--max-port=49200",
            f"--log-file={tmp_path / 'turn.log'}",
            "--simple-log",
            "--verbose",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Ready when it answers a STUN binding request on its port.
        request = bytes.fromhex("000100002112a442") + secrets.token_bytes(12)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.2)
            for _ in range(50):
                probe.sendto(request, ("127.0.0.1", port))
                try:
                    probe.recvfrom(2048)
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("coturn did not start")
        yield port, secret
    finally:
        server.terminate()
        server.wait(10)


async def test_the_stream_plays_through_the_turn_relay(
    coturn: tuple[int, str], tmp_path: Path
) -> None:
    port, secret = coturn
    env = {
        "IOTVIDEO_ICE_URLS": json.dumps([f"turn:127.0.0.1:{port}?transport=udp"]),
        "IOTVIDEO_TURN_SECRET": secret,
    }
    cloud = start_cloud(tmp_path / "cloud", env=env)
    try:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        async with live(world) as lv:
            player = MonitorPlayer(world.device.tid, sdk=lv.sdk, relay_only=True)
            await player.play()
            frames = await take_frames(player, 10)
            pair = selected_pair(player)
            await player.stop()
    finally:
        cloud.stop()
    assert {(f.width, f.height) for f in frames} == {(320, 180)}
    assert pair.local_candidate.type == "relay"


def selected_pair(player: MonitorPlayer):
    assert player._pc is not None
    transport = player._pc.getTransceivers()[0].receiver.transport.transport
    connection = transport._connection
    return next(iter(connection._nominated.values()))


async def test_a_camera_going_away_ends_its_viewers_only(world, rtsp_camera_proc) -> None:
    url, server = rtsp_camera_proc
    sources = {"1": (url, "none"), "2": ("testsrc:", "none")}
    async with live(world, sources=sources) as lv:
        gone = MonitorPlayer(world.device.tid, sdk=lv.sdk, source_id=1)
        other = MonitorPlayer(world.device.tid, sdk=lv.sdk, source_id=2)
        await gone.play()
        await other.play()
        await take_frames(gone, 3)
        server.kill()  # the IP camera behind channel 1 dies
        async with asyncio.timeout(15):
            error = await gone.wait_ended()
        assert error is not None and error.code == ErrorCode.IVTermErr_msg_calling_dev_hangup
        assert "source 1" in error.message
        # Channel 2 plays on.
        before = other.frames_decoded
        await take_frames(other, 10)
        assert other.frames_decoded >= before + 10 and other.connected
        await other.stop()


async def test_opening_a_silent_camera_does_not_block_the_event_loop(world: World) -> None:
    """An RTSP camera that accepts the connection and says nothing: probing it waits for
    its 10 s timeout, off the event loop, while the loop keeps running."""
    from iotvideo.device import DeviceClient
    from iotvideo.device.media import DeviceMedia
    from iotvideo.media.sources import SourceError

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        device = DeviceClient(world.device.certificate, world.cloud.url)
        gaps: list[float] = []

        async def ticker() -> None:
            loop = asyncio.get_running_loop()
            last = loop.time()
            while True:
                await asyncio.sleep(0.01)
                gaps.append(loop.time() - last)
                last = loop.time()

        ticking = asyncio.create_task(ticker())
        try:
            with pytest.raises(SourceError, match="cannot open"):
                await DeviceMedia.open(device, video=f"rtsp://127.0.0.1:{port}/cam", audio="none")
        finally:
            ticking.cancel()
    assert len(gaps) > 100 and max(gaps) < 0.5, f"the loop stalled {max(gaps):.2f} s"
