"""The vendor API's DescribeStream, RunDeviceStream and DisableDeviceStream through the
official client, against a cloud configured with a restream server (--restream-url) and
that server serving the URIs (tickets only: it has no user of its own).

- the RTSP and HLS URIs play in ffprobe;
- a URI altered, or past its ExpireTime, opens nothing;
- DisableDeviceStream refuses new URIs and ends a running pull within seconds; the URI
  it ran on opens nothing more; RunDeviceStream allows it again;
- the documented errors: another vendor's device, a user with no relation, a protocol
  we do not serve, one that does not exist.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from iotvideo.app.restream import Restream, RestreamOptions
from iotvideo.device.media import DeviceMedia
from iotvideo.protocol.stream import StreamClaim, sign_ticket
from tests.cloud.official import call, refused
from tests.link.world import World, device_client, eventually, make_world
from tests.services import free_port
from tests.support import Cloud, ffprobe, loopback_ice, start_cloud


@dataclass
class Site:
    cloud: Cloud
    world: World
    rtsp_port: int
    http_port: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    rtsp_port, http_port = free_port(), free_port()
    urls = [f"rtsp://127.0.0.1:{rtsp_port}", f"http://127.0.0.1:{http_port}"]
    cloud = start_cloud(
        tmp_path_factory.mktemp("cloud"), env={"IOTVIDEO_RESTREAM_URLS": json.dumps(urls)}
    )
    try:
        yield Site(cloud, make_world(cloud, devices=2), rtsp_port, http_port)
    finally:
        cloud.stop()


@pytest.fixture(autouse=True)
def ice_on_loopback() -> Iterator[None]:
    with loopback_ice():
        yield


@contextlib.asynccontextmanager
async def serving(site: Site) -> AsyncIterator[tuple[Restream, DeviceMedia]]:
    """The camera, and a restream server that serves DescribeStream URIs only."""
    async with device_client(site.cloud.url, site.world.device) as dc:
        media = DeviceMedia(dc, video="testsrc:?fps=15&definition=mid", audio="none")
        options = RestreamOptions(
            host="127.0.0.1",
            rtsp_port=site.rtsp_port,
            http_port=site.http_port,
            cloud=site.cloud.url,
            idle=2,
            definition="mid",
        )
        restream = Restream(None, options)
        await restream.start()
        try:
            yield restream, media
        finally:
            await restream.stop()
            await media.close()


def _describe(site: Site, protocol: str, **fields: object) -> object:
    world = site.world
    return call(
        world.api, "DescribeStream", Tid=world.device.tid, AccessId=world.owner.access_id,
        Protocol=protocol, **fields,
    ).Data  # fmt: skip


def _opens(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json", url],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


async def test_the_uris_play_and_a_changed_or_expired_one_opens_nothing(site: Site) -> None:
    async with serving(site) as (restream, media):
        rtsp = await asyncio.to_thread(_describe, site, "RTSP")
        assert rtsp.Protocol == "RTSP" and rtsp.VideoCodec == "H264"
        assert rtsp.URI.startswith(f"rtsp://127.0.0.1:{site.rtsp_port}/{site.world.device.tid}?")
        assert rtsp.ExpireTime >= time.time() + 3000
        info = await asyncio.to_thread(ffprobe, rtsp.URI, "-rtsp_transport", "tcp")
        assert (info["streams"][0]["codec_name"], info["streams"][0]["width"]) == ("h264", 640)
        hls = await asyncio.to_thread(_describe, site, "HLS")
        assert hls.URI.startswith(f"http://127.0.0.1:{site.http_port}/")
        assert "/index.m3u8?ticket=" in hls.URI
        info = await asyncio.to_thread(ffprobe, hls.URI)
        assert info["streams"][0]["codec_name"] == "h264"
        # A ticket for RTSP does not open HLS, nor the other way round.
        swapped = hls.URI.split("?")[0] + "?" + rtsp.URI.split("?")[1]
        assert (await asyncio.to_thread(_opens, swapped)).returncode != 0
        # One character of the ticket changed: refused before anything is pulled.
        pulls = sum(f.stats.pulls for f in restream.feeds.values())
        body, _, sig = rtsp.URI.partition("?ticket=")
        flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        done = await asyncio.to_thread(_opens, f"{body}?ticket={flipped}")
        assert done.returncode != 0 and "401" in done.stderr, done.stderr
        # Past its ExpireTime (signed with the cloud's own key): refused too.
        seed = base64.b64decode((site.cloud.data / "stream.key").read_text())
        key = Ed25519PrivateKey.from_private_bytes(seed)
        tid, owner = site.world.device.tid, site.world.owner.access_id
        old = sign_ticket(key, StreamClaim(tid, "", "RTSP", owner, int(time.time()) - 1))
        done = await asyncio.to_thread(_opens, f"{body}?ticket={old}")
        assert done.returncode != 0 and "401" in done.stderr, done.stderr
        assert sum(f.stats.pulls for f in restream.feeds.values()) == pulls
        assert media.viewers <= 1


async def test_disable_device_stream_ends_the_pull_and_refuses_its_uris(
    site: Site, tmp_path: Path
) -> None:
    world, tid = site.world, site.world.device.tid
    async with serving(site) as (_restream, media):
        uri = (await asyncio.to_thread(_describe, site, "RTSP")).URI
        reader = await asyncio.create_subprocess_exec(
            "ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", uri, "-c", "copy",
            "-f", "mpegts", "-y", str(tmp_path / "live.ts"),
        )  # fmt: skip

        live = tmp_path / "live.ts"

        async def watching() -> None:
            assert reader.returncode is None, "ffmpeg ended"
            assert media.viewers == 1 and live.exists() and live.stat().st_size > 10_000

        await eventually(watching, timeout=20)
        await world.avendor("DisableDeviceStream", Tids=[tid])
        disabled = time.monotonic()

        async def ended() -> None:
            assert media.viewers == 0 and reader.returncode is not None

        await eventually(ended, timeout=15)
        assert time.monotonic() - disabled <= 10.0
        assert not (await world.avendor("DescribeDevice", Tid=tid)).Data.StreamStatus
        refused("OperationDenied", _describe, site, "RTSP")
        done = await asyncio.to_thread(_opens, uri)
        assert done.returncode != 0
        assert media.viewers == 0
        await world.avendor("RunDeviceStream", Tids=[tid])
        assert (await world.avendor("DescribeDevice", Tid=tid)).Data.StreamStatus
        again = (await asyncio.to_thread(_describe, site, "RTSP")).URI
        info = await asyncio.to_thread(ffprobe, again, "-rtsp_transport", "tcp")
        assert info["streams"][0]["codec_name"] == "h264"


def test_the_documented_errors(site: Site, sqlite_cloud: Cloud) -> None:
    world = site.world
    other = make_world(site.cloud, devices=1)  # another vendor, on the same cloud
    refused("ResourceNotFound", call, world.api, "DescribeStream", Tid=other.device.tid,
            AccessId=world.owner.access_id, Protocol="RTSP")  # fmt: skip
    refused("ResourceNotFound", call, world.api, "DescribeStream", Tid="NOSUCHTID",
            AccessId=world.owner.access_id, Protocol="RTSP")  # fmt: skip
    refused("UnauthorizedOperation", call, world.api, "DescribeStream", Tid=world.device.tid,
            AccessId=world.stranger.access_id, Protocol="RTSP")  # fmt: skip
    refused("UnsupportedOperation", _describe, site, "RTMP")
    refused("UnsupportedOperation", _describe, site, "HLS-fmp4")
    refused("InvalidParameterValue", _describe, site, "FTP")
    refused("InvalidParameterValue", _describe, site, "RTSP", Address="rtsp://elsewhere:1")
    refused("ResourceNotFound", call, world.api, "DisableDeviceStream", Tids=[other.device.tid])
    # A cloud with no restream server says what to configure.
    plain = make_world(sqlite_cloud, devices=1)
    refused("ResourceUnavailable", call, plain.api, "DescribeStream", Tid=plain.device.tid,
            AccessId=plain.owner.access_id, Protocol="RTSP")  # fmt: skip


async def test_a_ticket_session_watches_its_device_and_nothing_else(site: Site) -> None:
    """Signed in with a ticket (as restream is), a link may ask for its device's live
    video only: no thing model, no other device, no other channel or kind."""
    from iotvideo.app import IoTVideo
    from iotvideo.protocol.errors import IVError

    world = site.world
    uri = (await asyncio.to_thread(_describe, site, "RTSP")).URI
    sdk = IoTVideo()
    sdk.setup(site.cloud.url)
    await sdk.register_stream_ticket(uri.partition("?ticket=")[2])
    try:
        assert sdk.login_reply["devices"] == [world.device.tid]
        assert await sdk.request("media.ice", {"tid": world.device.tid})
        for op, data in (
            ("prop.read", {"tid": world.device.tid, "path": "ProReadonly"}),
            ("media.ice", {"tid": world.devices[1].tid}),
            ("media.offer", {"tid": world.device.tid, "sdp": "v=0", "kind": "playback"}),
            ("media.offer", {"tid": world.device.tid, "sdp": "v=0", "source": "2"}),
        ):
            with pytest.raises(IVError):
                await sdk.request(op, data)
    finally:
        await sdk.unregister()
    forged = IoTVideo()
    forged.setup(site.cloud.url)
    ticket = uri.partition("?ticket=")[2]
    altered = ticket[:10] + ("A" if ticket[10] != "A" else "B") + ticket[11:]
    with pytest.raises(IVError) as refusal:
        await forged.register_stream_ticket(altered)
    assert int(refusal.value.code) == 20010
    await forged.unregister()
