"""The web console in Debian's Chromium (Playwright) against a real cloud and a simulated
camera: sign in, the device list, live video (frames and the burned-in clock advance),
talk from Chromium's fake microphone, a setting and an action, an event with its picture,
a cloud range played with hls.js and downloaded as MP4, provisioning's QR code.
Screenshots of the main pages go to artifacts/console/ (look at them)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import io
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, Page, expect

from iotvideo.device.card import Card, fill_test_recording
from iotvideo.device.client import DeviceClient
from iotvideo.device.cloudrec import CloudRecorder
from iotvideo.device.gateway.model import gateway_model
from iotvideo.device.media import DeviceMedia
from iotvideo.media.testsrc import read_stamp
from iotvideo.protocol.provision import parse_qr_payload
from tests.cloud.official import call
from tests.link.world import Device, World, device_client
from tests.live.helpers import live
from tests.support import ffprobe

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"

# Frames the page has shown so far (requestVideoFrameCallback), counted from now on.
COUNT_FRAMES = """
(selector) => {
  const video = document.querySelector(selector);
  window.frameCount = 0;
  const tick = () => { window.frameCount++; video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
}
"""

# The picture on screen at the stream's own size, as PNG bytes (base64).
GRAB = """
(selector) => {
  const video = document.querySelector(selector);
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return canvas.toDataURL("image/png").split(",")[1];
}
"""


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def stamp_on_screen(page: Page, selector: str = "#live-video") -> int:
    """The test pattern's clock (ms) in the picture a video element shows."""
    png = base64.b64decode(await page.evaluate(GRAB, selector))
    stamp = read_stamp(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
    assert stamp is not None, "the live picture carries no test-pattern stamp"
    return stamp.time_ms


async def sign_in(page: Page, base: str, access_id: str, token: str) -> None:
    await page.goto(f"{base}/console/")
    await page.get_by_label("AccessId").fill(access_id)
    await page.get_by_label("AccessToken").fill(token)
    await page.get_by_role("button", name="Sign in").click()


class Talk:
    """The camera's talk sink: fires once audio louder than silence arrived."""

    def __init__(self) -> None:
        self.loud = asyncio.Event()
        self.peak = 0.0

    def __call__(self, samples: np.ndarray) -> None:
        rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
        self.peak = max(self.peak, rms)
        if rms > 300:  # int16: Chromium's fake microphone beeps far above this
            self.loud.set()


@asynccontextmanager
async def camera(world: World, tmp_path: Path, talk: Talk) -> AsyncIterator[CloudRecorder]:
    async with device_client(world.cloud.url, world.device) as device:
        device.on_action("cameraOn")(lambda value: {"cameraOn": value, "ok": True})
        media = DeviceMedia(device, video="testsrc:?fps=15", audio="tone:440", talk_sink=talk)
        recorder = CloudRecorder(device, media, buffer_dir=tmp_path / "buf", segment_seconds=1)
        try:
            await recorder.start()
            yield recorder
            await recorder.stop()
        finally:
            await media.close()


async def test_the_console_end_to_end(world: World, chromium: Browser, tmp_path: Path) -> None:
    tid = world.device.tid
    base = world.cloud.url
    await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=tid)
    talk = Talk()
    context = await chromium.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    async with camera(world, tmp_path, talk) as recorder:
        # Sign in; the token is kept for the tab only, never in the URL.
        await sign_in(page, base, world.owner.access_id, world.owner.token)
        item = page.locator(f'#device-list li[data-tid="{tid}"]')
        await expect(item).to_have_attribute("data-online", "1")
        await expect(item).to_contain_text("online")
        assert world.owner.token not in page.url
        await shot(page, "devices")

        # The device page: live video within a moment, its clock advancing.
        await item.get_by_role("link").click()
        await page.get_by_role("button", name="Watch").click()
        status = page.locator("#live .status")
        await expect(status).to_contain_text("Playing 320×180", timeout=15_000)
        await page.evaluate(COUNT_FRAMES, "#live-video")
        await page.wait_for_function("() => window.frameCount >= 10", timeout=10_000)
        first = await stamp_on_screen(page)
        await page.wait_for_function("() => window.frameCount >= 20", timeout=10_000)
        assert await stamp_on_screen(page) > first  # the picture moves on

        # A snapshot downloads as a JPEG of the picture; sound can be turned on.
        async with page.expect_download() as snap:
            await page.get_by_role("button", name="Snapshot").click()
        jpeg = tmp_path / "snapshot.jpg"
        await (await snap.value).save_as(jpeg)
        with Image.open(jpeg) as picture:
            assert (picture.format, picture.size) == ("JPEG", (320, 180))
        await page.get_by_role("button", name="Unmute").click()
        assert await page.evaluate("() => document.querySelector('#live-video').muted") is False
        await expect(page.get_by_role("button", name="Mute")).to_have_attribute(
            "aria-pressed", "false"
        )

        # Resolution switch without reconnecting.
        await page.get_by_label("Resolution").select_option("mid")
        await expect(status).to_contain_text("640×360")

        # Talk: Chromium's fake microphone reaches the camera's talk sink.
        await page.get_by_role("button", name="Talk").click()
        async with asyncio.timeout(15):
            await talk.loud.wait()
        await page.get_by_role("button", name="Stop talking").click()

        # A ProWritable toggle reaches the device; the page shows the device's report.
        led = page.locator("#w-led")
        await expect(led).to_be_checked()  # the model's default
        await led.uncheck()
        applied = page.locator('[data-applied="ProWritable.led"]')
        await expect(applied).to_have_text("camera: false")
        await expect(led).not_to_be_checked()

        # An action's answer is shown.
        await page.locator('[data-action="cameraOn=1"]').click()
        answer = page.locator('[data-answer="Action.cameraOn"]')
        await expect(answer).to_contain_text('"ok":true')

        # An event the camera raises appears with its picture, without reloading.
        alarm = await recorder.event(1)
        event = page.locator(f'#event-list li[data-alarm="{alarm}"]')
        picture = event.locator("img")
        await expect(picture).to_be_visible(timeout=20_000)
        await page.wait_for_function(
            "(img) => img.complete && img.naturalWidth === 160", arg=await picture.element_handle()
        )

        # Type filters (typeMasks) and delete.
        sound = await recorder.event(2)
        noise = page.locator(f'#event-list li[data-alarm="{sound}"]')
        await expect(noise).to_contain_text("Sound", timeout=20_000)
        await page.get_by_label("Motion").check()
        await expect(noise).to_have_count(0)
        await expect(event).to_be_visible()
        await page.get_by_role("button", name=f"Delete event {alarm}").click()
        await expect(event).to_have_count(0)
        await page.get_by_label("Motion").uncheck()
        await expect(noise).to_be_visible()
        await expect(event).to_have_count(0)  # gone from the cloud, not only the page

        # A cloud range plays in the timeline (hls.js), and downloads as MP4.
        await recorder.wait_uploaded(3)
        await page.get_by_role("button", name="Refresh").click()
        await page.locator("#cloud-ranges .play-range").first.click()
        await page.wait_for_function(
            "() => document.querySelector('#cloud-video').currentTime > 0.5", timeout=20_000
        )
        await shot(page, "device")
        async with page.expect_download() as download:
            await page.locator("#cloud-ranges .mp4").first.click()
        saved = tmp_path / "range.mp4"
        await (await download.value).save_as(saved)
        probed = await asyncio.to_thread(ffprobe, str(saved))
        assert {s["codec_name"] for s in probed["streams"]} == {"h264", "aac"}
        assert float(probed["format"]["duration"]) >= 2
    # The camera went away: the list follows the link's push, without a reload.
    await page.get_by_role("link", name="Devices", exact=True).click()
    await expect(page.locator(f'#device-list li[data-tid="{tid}"]')).to_have_attribute(
        "data-online", "0"
    )
    assert not problems, problems
    await context.close()


async def test_console_refusals_and_logins(world: World, chromium: Browser) -> None:
    base = world.cloud.url
    page = await chromium.new_page()
    # A wrong token: the seed's code and what to do, and nothing is kept.
    await sign_in(page, base, world.owner.access_id, "usr_wrong")
    banner = page.get_by_role("alert")
    await expect(banner).to_contain_text("20010")
    await expect(banner).to_contain_text("sign in again")
    assert await page.evaluate("sessionStorage.length") == 0
    await shot(page, "sign-in-refused")
    # Signed in, a reload keeps the session (sessionStorage); signing out forgets it.
    await sign_in(page, base, world.owner.access_id, world.owner.token)
    await expect(page.locator("#device-list li").first).to_be_visible()
    await page.reload()
    await expect(page.locator("#device-list li").first).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("AccessId")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    # The pages are served with a strict policy.
    async with httpx.AsyncClient(base_url=base) as http:
        index = await http.get("/console/")
        assert "script-src 'self'" in index.headers["content-security-policy"]
        assert (await http.get("/console", follow_redirects=False)).status_code == 308
        assert (await http.get("/console/../pyproject.toml")).status_code == 404
        qr = await http.post("/console/qr", json={"ssid": "a", "password": "b", "token": "c"})
        assert (qr.status_code, qr.json()["code"]) == (401, 20010)
    await page.close()


async def test_console_provisioning_qr(world: World, chromium: Browser) -> None:
    """The QR code the provisioning page shows is what a camera reads: the network and a
    fresh bind token of the signed-in user."""
    context = await chromium.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = await context.new_page()
    await sign_in(page, world.cloud.url, world.owner.access_id, world.owner.token)
    await page.get_by_role("link", name="Add a camera").click()
    await page.get_by_label("Wi-Fi name (SSID)").fill("home")
    await page.get_by_label("Wi-Fi password").fill("secret-pass")
    await page.get_by_role("button", name="Make QR code").click()
    image = page.get_by_alt_text("Provisioning QR code")
    await expect(image).to_be_visible()
    await expect(page.get_by_role("status")).to_contain_text("Waiting for the camera")
    await shot(page, "provision-phone")
    png = await image.screenshot()
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert found, "no QR code in the page's picture"
    config = parse_qr_payload(found[0].text)
    assert (config.ssid, config.password) == ("home", "secret-pass")
    assert config.bind_token.startswith("bt_")
    # A new camera joins with the code's token: the page tells the user it is online.
    newcomer = world.devices[1]

    def with_token(dc: DeviceClient) -> None:
        dc.bind_token = config.bind_token

    async with device_client(world.cloud.url, newcomer, setup=with_token):
        await expect(page.get_by_role("status")).to_contain_text(f"Camera {newcomer.tid} is online")
    await context.close()


async def test_console_plays_the_memory_card(
    world: World, chromium: Browser, tmp_path: Path
) -> None:
    """The day's files from the camera's card; one plays from its start (the pictures'
    burned-in clock is their recording time), pauses, and seeks."""
    start = (int(time.time()) - 300) * 1000
    card = Card(tmp_path / "card", file_seconds=10)
    card.mount()
    await asyncio.to_thread(fill_test_recording, card, start, 30)
    page = await chromium.new_page()
    try:
        async with live(world, card=card, card_recording=False):
            await sign_in(page, world.cloud.url, world.owner.access_id, world.owner.token)
            await page.locator(f'#device-list li[data-tid="{world.device.tid}"] a').click()
            day = datetime.datetime.fromtimestamp(start / 1000).strftime("%Y-%m-%d")
            await page.locator("#card-day").fill(day)  # the recording's local day
            files = page.locator("#card-files .play-file")
            await expect(files).to_have_count(3)
            await files.nth(1).click()
            await expect(page.locator("#card .status")).to_have_text(
                "Playing from the card.", timeout=15_000
            )
            await page.evaluate(COUNT_FRAMES, "#card-video")
            await page.wait_for_function("() => window.frameCount >= 5")
            shown = await stamp_on_screen(page, "#card-video")
            assert start + 10_000 <= shown <= start + 20_000  # the second file's pictures
            await page.get_by_role("button", name="Pause").click()
            await expect(page.get_by_role("button", name="Resume")).to_be_visible()
            seek_to = datetime.datetime.fromtimestamp((start + 25_000) / 1000)
            await page.locator("#card-seek").fill(seek_to.strftime("%H:%M:%S"))
            await page.get_by_role("button", name="Go").click()
            await expect(page.locator("#card .status")).to_contain_text("Landed on")
            landed = datetime.datetime.fromtimestamp((start + 24_000) / 1000)  # a keyframe
            await expect(page.locator("#card-position")).to_have_text(
                landed.strftime("%-I:%M:%S %p")
            )
            await shot(page, "card")
    finally:
        card.close()
        await page.close()


async def test_the_console_picks_a_channel_of_an_nvr(world: World, chromium: Browser) -> None:
    """A device whose model has two channels (a gateway's NVR) gets a channel picker; the
    live view plays the channel chosen (channel 2 here is 640x360, channel 1 320x180),
    and the card section lists that channel's card."""
    api = world.api
    pid = call(api, "CreateProduct", ProductModel="nvr", ProductName="nvr",
               ProductDescription="nvr").Data.ProductId  # fmt: skip
    call(api, "RunIotModel", ProductId=pid, IotModel=json.dumps(gateway_model(2)))
    made = call(api, "CreateDevices", ProductId=pid, Number=1).Data[0]
    call(api, "CreateBinding", AccessId=world.owner.access_id, Tid=made.Tid, Role="owner")
    nvr = Device(made.Tid, made.Certificate)
    sources = {"1": ("testsrc:?size=320x180", "none"), "2": ("testsrc:?size=640x360", "none")}
    context = await chromium.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    async with live(world, device=nvr, sources=sources):
        await sign_in(page, world.cloud.url, world.owner.access_id, world.owner.token)
        item = page.locator(f'#device-list li[data-tid="{made.Tid}"]')
        await expect(item).to_have_attribute("data-online", "1", timeout=15_000)
        await item.get_by_role("link").click()
        picker = page.get_by_label("Channel")
        await expect(picker).to_be_visible(timeout=15_000)
        await page.get_by_role("button", name="Watch").click()
        status = page.locator("#live .status")
        await expect(status).to_contain_text("Playing 320×180", timeout=15_000)
        await picker.select_option("2")
        await page.get_by_role("button", name="Watch").click()
        await expect(status).to_contain_text("Playing 640×360", timeout=15_000)
        await shot(page, "nvr-channel-2")
    await context.close()
    assert problems == []
