"""Chromium with its default settings on one host of a LAN, the cloud and a camera on
another (network namespaces joined by a veth pair): the browser hides its host address
behind an mDNS name, as on any real network, and the console still plays the camera live.
Nothing here uses loopback for media or the flags that turn mDNS hiding off."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.live.test_console import COUNT_FRAMES, sign_in
from tests.netns import CAMERA_IP, PHONE_IP, ROOT, Lan, lan
from tests.support import LineWatcher, new_key

# Chromium as a user runs it: no --allow-loopback-in-peer-connection, no fake devices.
DEFAULT_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]

# What Chromium offers when the page has no camera or microphone permission.
OFFER = """
async () => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  pc.close();
  return pc.localDescription.sdp;
}
"""


@dataclass
class Site:
    net: Lan
    cloud: str
    tid: str
    access_id: str
    token: str
    tmp: Path


def _scenario(net: Lan, step: str, cloud: str, db: str, key: tuple[str, str], *extra: str) -> str:
    cmd = net.python(net.phone, "-m", "tests.provision.lan_scenario", step, "--cloud", cloud)
    cmd += ["--db", db, "--secret-id", key[0], "--secret-key", key[1], *extra]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.splitlines()[-1]


@pytest.fixture
def site() -> Iterator[Site]:
    """The cloud and a camera (`iotvideo device run`) on the camera's host; a user who owns
    the camera."""
    with lan() as net, tempfile.TemporaryDirectory() as tmp:
        # The phone's default route, as on any LAN (its router: the camera's host, which
        # forwards nothing, so no packet leaves the two namespaces). Without one Chromium
        # finds no network to gather candidates on.
        subprocess.run(
            ["ip", "-n", net.phone, "route", "add", "default", "via", CAMERA_IP], check=True
        )
        data = Path(tmp)
        db = f"sqlite+aiosqlite:///{data / 'iotvideo.db'}"
        cmd = net.python(net.camera, "-m", "iotvideo", "cloud", "--data", str(data), "--db", db)
        cmd += ["--host", CAMERA_IP, "--port", "0", "--log-level", "warning"]
        cloud = LineWatcher(subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True))
        camera: LineWatcher | None = None
        try:
            url = cloud.wait_for(r"listening on (http://\S+)")[1]
            key = new_key(db)
            devices = json.loads(_scenario(net, "setup", url, db, key, "--devices", "1"))
            tid = devices[0]["tid"]
            owner = json.loads(_scenario(net, "owner", url, db, key, "--tid", tid))
            cert = data / "camera.cert"
            cert.write_text(devices[0]["certificate"])
            run = net.python(net.camera, "-m", "iotvideo", "device", "run", "--cert", str(cert))
            run += ["--cloud", url, "--ice-address", CAMERA_IP]
            camera = LineWatcher(
                subprocess.Popen(
                    run, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
                )
            )
            camera.wait_for(f"device {tid} online")
            yield Site(net, url, tid, owner["access_id"], owner["token"], data)
        finally:
            if camera is not None:
                camera.stop()
            cloud.stop()


@pytest.fixture
async def lan_chromium(site: Site) -> AsyncIterator[Browser]:
    """Debian's Chromium started inside the phone's namespace (Playwright talks to it over
    the pipe it inherits through `ip netns exec`)."""
    wrapper = site.tmp / "chromium-on-the-phone"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {site.net.phone} /usr/bin/chromium "$@"\n')
    wrapper.chmod(0o755)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(wrapper), args=DEFAULT_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def test_chromium_defaults_across_a_lan(site: Site, lan_chromium: Browser) -> None:
    page = await lan_chromium.new_page()
    await page.goto(f"{site.cloud}/console/")
    # Chromium hides its address: its host candidates are mDNS names, never 198.51.100.1.
    offer: str = await page.evaluate(OFFER)
    hosts = [line for line in offer.splitlines() if " typ host" in line]
    assert hosts and all(".local " in line for line in hosts), offer
    assert PHONE_IP not in offer
    # The console plays the camera all the same (trickled mDNS candidates).
    await sign_in(page, site.cloud, site.access_id, site.token)
    await page.locator(f'#device-list li[data-tid="{site.tid}"] a').click()
    await page.get_by_role("button", name="Watch").click()
    await expect(page.locator("#live .status")).to_contain_text("Playing", timeout=20_000)
    await page.evaluate(COUNT_FRAMES, "#live-video")
    await page.wait_for_function("() => window.frameCount >= 15", timeout=15_000)
    await page.close()
