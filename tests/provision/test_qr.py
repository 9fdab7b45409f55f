"""QR provisioning end to end, and the bind-token rules (on loopback: no LAN needed)."""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iotvideo.app import IoTVideo
from iotvideo.device.provision import Provisioner, decode_qr
from iotvideo.device.simulator import as_filmed
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.provision import WifiConfig
from tests.link.world import World, app_sdk, fast_backoff


def _provisioner(world: World, joined: list[WifiConfig]) -> Provisioner:
    """The unowned camera's provisioner; the Wi-Fi settings it would join go to ``joined``."""
    return Provisioner(
        world.devices[1].certificate,
        world.cloud.url,
        apply_wifi=joined.append,
        client_options={"backoff": fast_backoff()},
    )


async def _observed(sdk: IoTVideo) -> asyncio.Future[tuple[str | None, IVError | None]]:
    result: asyncio.Future[tuple[str | None, IVError | None]] = (
        asyncio.get_running_loop().create_future()
    )

    def observe(tid: str | None, error: IVError | None) -> None:
        if not result.done():
            result.set_result((tid, error))

    sdk.net_config.observe_net_cfg_result(observe)
    return result


async def test_qr_flow(world: World, tmp_path: Path) -> None:
    newcomer = world.new_user("unboxer")
    box = world.devices[1]  # nobody owns it yet
    tid = box.tid
    async with app_sdk(world.cloud.url, newcomer) as sdk:
        token = await sdk.net_config.get_bind_token()
        code = sdk.net_config.qrcode.create("home-net", "s3cret pass", token)
        assert code.png.startswith(b"\x89PNG") and "s3cret pass" in code.payload
        image = tmp_path / "qr.png"
        code.save(str(image))
        seen = await _observed(sdk)
        joined: list[WifiConfig] = []
        provisioner = _provisioner(world, joined)
        device = await provisioner.by_qr(image)
        try:
            async with asyncio.timeout(10):
                assert await seen == (tid, None)
            assert joined == [WifiConfig("home-net", "s3cret pass", token)]
            bound = await world.avendor(
                "CreateBinding", AccessId=newcomer.access_id, Tid=tid, Role="owner", BindToken=token
            )
            await sdk.net_config.subscribe_device(bound.AccessToken, tid)
            assert await sdk.message.read_property(tid, "ProWritable._logLevel.setVal") == 3
            # The token is single-use.
            with pytest.raises(Exception, match="InvalidParameterValue"):
                await world.avendor(
                    "CreateBinding",
                    AccessId=newcomer.access_id,
                    Tid=tid,
                    Role="owner",
                    BindToken=token,
                )
        finally:
            await device.stop()


async def test_camera_scans_its_video_until_it_sees_the_code(world: World) -> None:
    """Frames as a camera films them: nothing, a stranger's code, then the app's code held
    crooked and blurred in front of the lens. The device joins with the third."""
    import segno

    newcomer = world.new_user("scanner")
    box = world.devices[1]
    rng = random.Random(7)
    async with app_sdk(world.cloud.url, newcomer) as sdk:
        token = await sdk.net_config.get_bind_token()
        ours = as_filmed(sdk.net_config.qrcode.create("attic", "dusty-2", token).png, rng)
        stranger = io.BytesIO()
        segno.make_qr("WIFI:S:neighbour;T:WPA;P:nope;;").save(stranger, kind="png", scale=6)
        frames = [
            Image.new("L", (320, 240), 128),
            as_filmed(stranger.getvalue(), rng),
            np.asarray(ours),
            Image.new("L", (320, 240), 0),  # never reached
        ]
        online = sdk.net_config.next_net_cfg_result(box.tid)
        joined: list[WifiConfig] = []
        provisioner = _provisioner(world, joined)
        device = await provisioner.by_qr_frames(frames, timeout=30)
        try:
            async with asyncio.timeout(10):
                assert await online == box.tid
            assert joined == [WifiConfig("attic", "dusty-2", token)]
            bound = await world.avendor(
                "CreateBinding",
                AccessId=newcomer.access_id,
                Tid=box.tid,
                Role="owner",
                BindToken=token,
            )
            await sdk.net_config.subscribe_device(bound.AccessToken, box.tid)
            assert await sdk.message.read_property(box.tid, "ProWritable._logLevel.setVal") == 3
        finally:
            await device.stop()


async def test_scanning_without_a_code_gives_up(world: World) -> None:
    provisioner = Provisioner(world.devices[1].certificate, world.cloud.url)

    async def endless() -> AsyncIterator[Image.Image]:
        while True:
            yield Image.new("L", (64, 64), 200)

    with pytest.raises(IVError) as caught:
        await provisioner.by_qr_frames(endless(), timeout=0.3)
    assert caught.value.code == ErrorCode.IVNetCfgErr_DevStatusErr
    assert "no code within 0.3 s" in caught.value.message
    with pytest.raises(IVError, match="in 2 frames"):
        await provisioner.by_qr_frames([Image.new("L", (64, 64)), Image.new("L", (64, 64))])


def test_distorted_codes_decode() -> None:
    rng = random.Random(2026)
    token = "bt_" + "A" * 43
    png = _make_png("cafe-wifi", "pa55word!", token)
    for _ in range(20):
        assert decode_qr(as_filmed(png, rng)) == WifiConfig("cafe-wifi", "pa55word!", token)


def _make_png(ssid: str, password: str, token: str) -> bytes:
    from iotvideo.app.netconfig import QRCodeConfig

    return QRCodeConfig().create(ssid, password, token).png


def test_malformed_qr_codes_are_refused(tmp_path: Path) -> None:
    import segno

    other = tmp_path / "other.png"
    segno.make_qr("https://example.com/not-ours").save(other, scale=8)
    with pytest.raises(ValueError, match="iotvideo"):
        decode_qr(other)
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    with pytest.raises(ValueError, match="no QR code"):
        decode_qr(blank)
    wrong_version = tmp_path / "v2.png"
    segno.make_qr('{"v":2,"s":"x","p":"y","t":"z"}').save(wrong_version, scale=8)
    with pytest.raises(ValueError, match="v1"):
        decode_qr(wrong_version)
