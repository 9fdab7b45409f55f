"""Restream against real clients: ffprobe and ffmpeg over RTSP (TCP), GStreamer's rtspsrc
over UDP, HTTP snapshots and HLS read by ffprobe; a simulated camera behind a real cloud.

What a user would notice: the URLs play the camera at its resolution with no decode
error; ten RTSP clients make one session on the device; a wrong password is refused
with nothing started on the device; the pull stops once the last client has gone for
the idle time; a device that restarts under a running client comes back by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from iotvideo.app.restream import Restream, RestreamOptions
from iotvideo.device.media import DeviceMedia
from iotvideo.media.audio import dominant_frequency
from tests.link.world import World, app_sdk, device_client, eventually, make_world
from tests.services import free_port
from tests.support import Cloud, ffprobe, loopback_ice

PASSWORD = "s3cret pass"


@pytest.fixture(scope="module")
def world(sqlite_cloud: Cloud) -> World:
    return make_world(sqlite_cloud, devices=2)


@pytest.fixture(autouse=True)
def ice_on_loopback() -> object:
    with loopback_ice():
        yield


@dataclass
class Served:
    restream: Restream
    media: DeviceMedia
    tid: str

    def rtsp(self, path: str = "", user: str = "viewer", password: str = PASSWORD) -> str:
        port = self.restream.rtsp.port  # type: ignore[union-attr]
        return f"rtsp://{user}:{password.replace(' ', '%20')}@127.0.0.1:{port}/{self.tid}{path}"

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.restream.http_port}/{self.tid}{path}"


@contextlib.asynccontextmanager
async def served(world: World, *, idle: float = 2.0, **media: object) -> AsyncIterator[Served]:
    async with device_client(world.cloud.url, world.device) as dc:
        device_media = DeviceMedia(dc, **{"video": "testsrc:?fps=15", "audio": "none", **media})
        try:
            async with app_sdk(world.cloud.url, world.owner) as sdk:
                options = RestreamOptions(
                    host="127.0.0.1",
                    rtsp_port=free_port(),
                    http_port=free_port(),
                    users={"viewer": PASSWORD},
                    tokens={world.device.tid: "camera-token"},
                    idle=idle,
                    definition="mid",
                )
                restream = Restream(sdk, options)
                await restream.start()
                try:
                    yield Served(restream, device_media, world.device.tid)
                finally:
                    await restream.stop()
        finally:
            await device_media.close()


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def _count_frames(args: list[str]) -> tuple[int, str]:
    """ffmpeg reading ``args``' input, copying 5 s of video; frames read and its errors."""
    done = _run("ffmpeg", "-v", "error", *args, "-c", "copy", "-t", "5", "-f", "mpegts",
                "-y", "/dev/stdout", timeout=40)  # fmt: skip
    return done.stdout.count("G"), done.stderr


async def test_rtsp_plays_the_camera_to_ffprobe_ffmpeg_and_gstreamer(
    world: World, tmp_path: Path
) -> None:
    async with served(world) as s:
        info = await asyncio.to_thread(ffprobe, s.rtsp(), "-rtsp_transport", "tcp")
        assert [(x["codec_name"], x["width"], x["height"]) for x in info["streams"]] == [
            ("h264", 640, 360)
        ]
        # ffmpeg over TCP, copying 5 s: every frame decodes.
        out = tmp_path / "copy.ts"
        done = await asyncio.to_thread(
            _run, "ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", s.rtsp(),
            "-c", "copy", "-t", "5", "-y", str(out), timeout=40,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        decoded = await asyncio.to_thread(
            _run, "ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"
        )
        assert decoded.returncode == 0 and not decoded.stderr.strip(), decoded.stderr
        frames = await asyncio.to_thread(ffprobe, out, "-count_frames")
        assert 60 <= int(frames["streams"][0]["nb_read_frames"]) <= 90  # 5 s at 15 fps
        # GStreamer's rtspsrc over UDP.
        gst = await asyncio.to_thread(
            _run, "gst-launch-1.0", "-q", "rtspsrc", f"location={s.rtsp()}", "protocols=udp",
            "!", "rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "fakesink",
            "num-buffers=30", timeout=40,
        )  # fmt: skip
        assert gst.returncode == 0, gst.stderr


@pytest.mark.parametrize(
    ("device_audio", "rtsp_audio"),
    [("tone:440", ("aac", 48000)), ("tone:440?codec=pcmu", ("pcm_mulaw", 8000))],
)
async def test_the_cameras_audio_over_rtsp_and_hls(
    world: World, tmp_path: Path, device_audio: str, rtsp_audio: tuple[str, int]
) -> None:
    """RTSP carries G.711 as the device sent it and Opus as AAC; HLS carries AAC. ffmpeg
    reads both streams with no error, and the audio is the camera's tone."""
    async with served(world, audio=device_audio) as s:
        info = await asyncio.to_thread(ffprobe, s.rtsp(), "-rtsp_transport", "tcp")
        kinds = {x["codec_type"]: x for x in info["streams"]}
        assert (kinds["video"]["codec_name"], kinds["video"]["width"]) == ("h264", 640)
        assert (kinds["audio"]["codec_name"], int(kinds["audio"]["sample_rate"])) == rtsp_audio
        out = tmp_path / "copy.mkv"
        done = await asyncio.to_thread(
            _run, "ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", s.rtsp(),
            "-map", "0", "-c", "copy", "-t", "4", "-y", str(out), timeout=40,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        wav = tmp_path / "audio.wav"
        decoded = await asyncio.to_thread(
            _run, "ffmpeg", "-v", "error", "-i", str(out), "-map", "0:a", "-ac", "1", "-ar",
            "48000", "-y", str(wav),
        )  # fmt: skip
        assert decoded.returncode == 0 and not decoded.stderr.strip(), decoded.stderr
        with wave.open(str(wav)) as w:
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        assert len(samples) >= 2 * 48000  # at least 2 of the 4 s
        assert abs(dominant_frequency(samples[-48000:], 48000) - 440) < 15
        # HLS: AAC whatever the device sends, in the same segments as the video.
        url = s.http("/index.m3u8?token=camera-token")
        async with httpx.AsyncClient(timeout=20) as http:
            assert (await http.get(url)).status_code == 200
        hls = await asyncio.to_thread(ffprobe, url)
        assert sorted((x["codec_type"], x["codec_name"]) for x in hls["streams"]) == [
            ("audio", "aac"),
            ("video", "h264"),
        ]
        feed = s.restream.feeds[(s.tid, "")]
        assert feed.audio_codec == (device_audio.partition("codec=")[2] or "opus")


async def test_ten_rtsp_clients_make_one_session_on_the_device(world: World) -> None:
    async with served(world) as s:

        async def probe() -> dict[str, object]:
            return await asyncio.to_thread(ffprobe, s.rtsp(), "-rtsp_transport", "tcp")

        command = ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", s.rtsp(),
                   "-c", "copy", "-t", "4", "-f", "null", "-"]  # fmt: skip
        readers = [asyncio.create_subprocess_exec(*command) for _ in range(10)]
        procs = await asyncio.gather(*readers)

        async def ten_readers() -> None:
            assert s.restream.clients.get(((s.tid, ""), "rtsp")) == 10

        await eventually(ten_readers, timeout=15)
        assert s.media.viewers == 1
        assert all([await p.wait() == 0 for p in procs])
        assert (await probe())["streams"]


async def test_a_wrong_password_is_refused_with_nothing_started(world: World) -> None:
    async with served(world) as s:
        for url in (
            s.rtsp(password="wrong"),
            s.rtsp().replace(f"viewer:{PASSWORD.replace(' ', '%20')}@", ""),
        ):
            done = await asyncio.to_thread(
                _run, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", url
            )
            assert done.returncode != 0 and "401" in done.stderr, done.stderr
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(s.http("/snapshot.jpg"))).status_code == 401
            bad = await http.get(s.http("/snapshot.jpg"), auth=("viewer", "wrong"))
            assert bad.status_code == 401
            assert (await http.get(s.http("/index.m3u8?token=nope"))).status_code == 401
            assert (await http.get(f"http://127.0.0.1:{s.restream.http_port}/nosuch/snapshot.jpg",
                                   auth=("viewer", PASSWORD))).status_code == 404  # fmt: skip
        assert s.media.viewers == 0 and not s.restream.feeds


async def test_the_pull_stops_after_the_idle_time(world: World) -> None:
    async with served(world, idle=2.0) as s:
        done = await asyncio.to_thread(
            _run, "ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", s.rtsp(),
            "-c", "copy", "-t", "2", "-f", "null", "-",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        left = time.monotonic()
        feed = s.restream.feeds[(s.tid, "")]

        async def stopped() -> None:
            assert not feed.running and s.media.viewers == 0

        await eventually(stopped, timeout=10)
        assert time.monotonic() - left <= 2.0 + 2.0  # the idle time, and the hang-up


async def test_snapshot_and_hls_over_http(world: World, tmp_path: Path) -> None:
    async with served(world) as s, httpx.AsyncClient(timeout=20) as http:
        answers = await asyncio.gather(
            *(http.get(s.http("/snapshot.jpg"), auth=("viewer", PASSWORD)) for _ in range(5))
        )
        assert {a.status_code for a in answers} == {200}
        assert len({a.content for a in answers}) == 1  # one keyframe, decoded once
        picture = tmp_path / "snap.jpg"
        picture.write_bytes(answers[0].content)
        stream = ffprobe(picture)["streams"][0]
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 640, 360)
        playlist = await http.get(s.http("/index.m3u8?token=camera-token"))
        assert playlist.status_code == 200 and "#EXTINF" in playlist.text
        assert "token=camera-token" in playlist.text
        info = await asyncio.to_thread(ffprobe, s.http("/index.m3u8?token=camera-token"))
        assert [(x["codec_name"], x["width"], x["height"]) for x in info["streams"]] == [
            ("h264", 640, 360)
        ]
        metrics = (await http.get(f"http://127.0.0.1:{s.restream.http_port}/metrics")).text
        assert f'iotvideo_restream_clients{{tid="{s.tid}",source="",protocol="hls"}} 1' in metrics
        assert "iotvideo_restream_pulls_total" in metrics


async def test_mjpeg_pictures_for_several_clients_from_one_decoder(
    world: World, tmp_path: Path
) -> None:
    """stream.mjpeg: JPEGs at the camera's size, as ffmpeg's MJPEG reader takes them;
    two clients share one decoder, which stops when they have gone."""
    async with served(world) as s:
        url = s.http("/stream.mjpeg?token=camera-token")

        async def pictures(count: int) -> list[bytes]:
            got: list[bytes] = []
            async with (
                httpx.AsyncClient(timeout=20) as http,
                http.stream("GET", url) as answer,
            ):
                assert answer.headers["content-type"].startswith("multipart/x-mixed-replace")
                buffer = b""
                async for chunk in answer.aiter_bytes():
                    buffer += chunk
                    while (start := buffer.find(b"\xff\xd8")) >= 0 and (
                        end := buffer.find(b"\xff\xd9", start)
                    ) >= 0:
                        got.append(buffer[start : end + 2])
                        buffer = buffer[end + 2 :]
                    if len(got) >= count:
                        return got
            return got

        first, second = await asyncio.gather(pictures(4), pictures(4))
        assert len(first) == len(second) == 4
        assert s.media.viewers == 1
        source = s.restream._mjpeg[(s.tid, "")]
        (tmp_path / "one.jpg").write_bytes(second[-1])
        stream = ffprobe(tmp_path / "one.jpg")["streams"][0]
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 640, 360)
        done = await asyncio.to_thread(
            _run, "ffmpeg", "-v", "error", "-f", "mpjpeg", "-i", url, "-frames:v", "3",
            "-f", "null", "-", timeout=30,
        )  # fmt: skip
        assert done.returncode == 0 and not done.stderr.strip(), done.stderr

        async def decoder_stopped() -> None:
            assert source.clients == 0 and source._worker is None

        await eventually(decoder_stopped)
        async with httpx.AsyncClient(timeout=10) as http:
            refused = await http.get(s.http("/stream.mjpeg?token=nope"))
        assert refused.status_code == 401


async def test_low_latency_hls_parts_and_blocking_reloads(world: World, tmp_path: Path) -> None:
    """The playlist lists parts of at most 0.2 s and hints at the next; a reload blocked
    on that part returns once it exists; a segment is its parts' bytes."""
    async with served(world) as s, httpx.AsyncClient(timeout=20) as http:
        url = s.http("/index.m3u8?token=camera-token")
        first = (await http.get(url)).text
        assert "#EXT-X-PART-INF:PART-TARGET=0.200" in first
        assert "CAN-BLOCK-RELOAD=YES" in first
        hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg(\d+)\.(\d+)\.ts', first)
        assert hint is not None
        msn, part = int(hint[1]), int(hint[2])
        began = time.monotonic()
        hinted = asyncio.create_task(http.get(s.http(f"/seg{msn}.{part}.ts?token=camera-token")))
        blocked = await http.get(url + f"&_HLS_msn={msn}&_HLS_part={part}")
        waited = time.monotonic() - began
        assert blocked.status_code == 200 and waited < 3, waited
        text = blocked.text
        assert f'URI="seg{msn}.{part}.ts?token=camera-token"' in text or f"seg{msn}.ts" in text
        part_bytes = (await hinted).content  # the hinted part, answered once it was made
        assert part_bytes[:1] == b"\x47"
        (tmp_path / "part.ts").write_bytes(part_bytes)
        assert ffprobe(tmp_path / "part.ts")["streams"][0]["codec_name"] == "h264"
        # The newest complete segment whose parts are listed: they are its bytes.
        n = int(re.findall(r"^seg(\d+)\.ts", text, re.MULTILINE)[-1])
        parts = re.findall(
            rf'#EXT-X-PART:DURATION=([\d.]+),URI="seg{n}\.(\d+)\.ts[^"]*"(,INDEPENDENT=YES)?',
            text,
        )
        assert parts and all(float(d) <= 0.2 for d, _i, _x in parts)
        assert parts[0][2] and not any(x for _d, _i, x in parts[1:])  # a keyframe first
        pieces = [
            (await http.get(s.http(f"/seg{n}.{i}.ts?token=camera-token"))).content
            for _d, i, _x in parts
        ]
        whole = (await http.get(s.http(f"/seg{n}.ts?token=camera-token"))).content
        assert b"".join(pieces) == whole
        for bad in ("&_HLS_msn=x", "&_HLS_part=1", f"&_HLS_msn={msn + 50}"):
            assert (await http.get(url + bad)).status_code == 400, bad
        assert (await http.get(s.http("/seg99999.0.ts?token=camera-token"))).status_code == 404


async def test_the_device_restarting_under_a_client(world: World, tmp_path: Path) -> None:
    """The camera's device goes away and comes back: the RTSP client's frames resume
    within 5 s, on the same RTSP session."""
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        options = RestreamOptions(
            host="127.0.0.1", rtsp_port=free_port(), http_port=free_port(),
            users={"viewer": PASSWORD}, idle=5, definition="mid",
        )  # fmt: skip
        restream = Restream(sdk, options)
        await restream.start()
        tid = world.device.tid
        url = f"rtsp://viewer:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{restream.rtsp.port}/{tid}"  # type: ignore[union-attr]
        try:
            async with device_client(world.cloud.url, world.device) as dc:
                media = DeviceMedia(dc, video="testsrc:?fps=15", audio="none")
                reader = await asyncio.create_subprocess_exec(
                    "ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url,
                    "-c", "copy", "-f", "mpegts", "-y", str(tmp_path / "long.ts"),
                )  # fmt: skip
                feed = None

                async def pulling() -> None:
                    nonlocal feed
                    feed = restream.feeds.get((tid, ""))
                    assert feed is not None and feed.stats.packets > 30

                await eventually(pulling, timeout=15)
                await media.close()
            assert feed is not None
            before = feed.stats.packets
            async with device_client(world.cloud.url, world.device) as dc:
                media = DeviceMedia(dc, video="testsrc:?fps=15", audio="none")
                back = time.monotonic()

                async def resumed() -> None:
                    assert feed is not None and feed.stats.packets > before + 15

                await eventually(resumed, timeout=15)
                resumed_after = time.monotonic() - back
                size = (tmp_path / "long.ts").stat().st_size

                async def reaches_the_client() -> None:
                    assert (tmp_path / "long.ts").stat().st_size > size + 20_000

                await eventually(reaches_the_client, timeout=10)
                assert reader.returncode is None  # the same RTSP session
                reader.terminate()
                await reader.wait()
                await media.close()
            assert resumed_after <= 5.0, resumed_after
        finally:
            await restream.stop()


HLS_PAGE = """
<video id="v" muted autoplay playsinline></video>
<script type="module">
import Hls from "/player/hls.mjs";
const video = document.getElementById("v");
const hls = new Hls();
hls.loadSource(window.SOURCE);
hls.attachMedia(video);
hls.on(Hls.Events.ERROR, (_e, data) => { if (data.fatal) window.FAILED = data.details; });
</script>
"""
HLS_JS = Path(__file__).resolve().parents[2] / "src/iotvideo/cloud/console/vendor/hls.light.min.mjs"


async def test_chromium_plays_the_hls_url_with_hls_js(world: World) -> None:
    """A page plays the HLS URL (a token in it) with hls.js: the video element's time
    advances and it shows the camera's size."""
    from tests.live.browser import chromium_browser

    async with served(world) as s, chromium_browser() as browser:
        page = await browser.new_page()
        # The page and hls.js: answered by the test itself (routes) at restream's origin.
        origin = f"http://127.0.0.1:{s.restream.http_port}"

        async def serve(route: Any) -> None:
            if route.request.url.endswith("/hls.mjs"):
                await route.fulfill(body=HLS_JS.read_text(), content_type="text/javascript")
            else:
                await route.fulfill(body=HLS_PAGE, content_type="text/html")

        await page.route(f"{origin}/player/*", serve)
        fetched: list[str] = []
        page.on("request", lambda request: fetched.append(request.url))
        source = s.http("/index.m3u8?token=camera-token")
        await page.add_init_script(f"window.SOURCE = {source!r};")
        await page.goto(f"{origin}/player/")
        await page.wait_for_function(
            "() => window.FAILED || document.getElementById('v').currentTime > 2", timeout=30_000
        )
        assert await page.evaluate("window.FAILED || null") is None
        size = await page.evaluate(
            "() => { const v = document.getElementById('v'); return [v.videoWidth, v.videoHeight] }"
        )
        assert size == [640, 360]
        # hls.js plays it as LL-HLS: it asks for parts and blocks on the playlist.
        assert any(re.search(r"/seg\d+\.\d+\.ts", u) for u in fetched), fetched
        assert any("_HLS_msn=" in u for u in fetched), fetched
