"""Browser numbers: Debian's Chromium (Playwright) against a cloud and a camera on loopback.

    .venv/bin/python benchmarks/browser.py [--plays 20] [--loads 20]

The cloud and the camera (`iotvideo device run`, 640x360 "mid" or 320x180 "low" at 15
fps, ICE on 127.0.0.1) are separate processes; Chromium runs with the loopback flag ICE
needs here.

1. The console: from the click on "Watch" to the first frame the page shows
   (requestVideoFrameCallback), ``--plays`` plays, p50/p95. The click trickles ICE (the
   console's way); the same code through the console's modules without trickle (the
   offer waits for ICE gathering) for comparison.
2. WHEP from a bare page (RTCPeerConnection + fetch): POST to first frame, with trickle
   (PATCH) and with a complete offer.
3. Console page load to interactive (the sign-in form rendered by the module), in a new
   browser context each time (nothing cached), p50/p95, and the bytes transferred
   (hls.js, loaded only when a cloud recording plays, reported apart).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.live.browser import CHROMIUM_ARGS, WHEP_WATCH

from link import Cloud, Vendor, run_with_cloud
from live import Camera

HLS = Path(__file__).resolve().parents[1] / "src/iotvideo/cloud/console/vendor/hls.light.min.mjs"

# Time from a click on Watch to the first frame of #live-video, measured in the page.
ARM_CLICK = """
() => new Promise((resolve) => {
  const video = document.querySelector("#live-video");
  document.querySelector("#play").addEventListener("click", () => {
    const t0 = performance.now();
    video.requestVideoFrameCallback(() => resolve(performance.now() - t0));
  }, {once: true, capture: true});
  window.armed = true;
})
"""

# The console's own modules, signed in, watching with or without trickle.
MODULE_PLAY = """
async ({tid, accessId, token, trickle}) => {
  const {Link, linkUrl} = await import("/console/link.js");
  const {watch} = await import("/console/live.js");
  if (!window.benchLink) {
    window.benchLink = new Link(linkUrl());
    await window.benchLink.login(accessId, token);
  }
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  const t0 = performance.now();
  const session = await watch(window.benchLink, tid, video, "low", {trickle});
  await new Promise((resolve) => video.requestVideoFrameCallback(resolve));
  const ms = performance.now() - t0;
  session.close();
  video.remove();
  return ms;
}
"""

LOADED = """
() => {
  const entries = [...performance.getEntriesByType("navigation"),
                   ...performance.getEntriesByType("resource")];
  return {
    interactive: performance.now(),
    bytes: entries.reduce((sum, e) => sum + (e.transferSize || e.encodedBodySize || 0), 0),
    files: entries.length,
  };
}
"""


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def report(name: str, samples: list[float]) -> None:
    p50, p95 = quantiles(samples)
    print(f"  {name:44s} p50 {p50:6.1f}  p95 {p95:6.1f}", flush=True)


async def sign_in(page: Page, url: str, user: str, token: str) -> None:
    await page.goto(f"{url}/console/")
    await page.get_by_label("AccessId").fill(user)
    await page.get_by_label("AccessToken").fill(token)
    await page.get_by_role("button", name="Sign in").click()


async def console_clicks(
    browser: Browser, url: str, tid: str, user: str, token: str, n: int
) -> list[float]:
    page = await browser.new_page()
    await sign_in(page, url, user, token)
    item = page.locator(f'#device-list li[data-tid="{tid}"]')
    await item.and_(page.locator('[data-online="1"]')).wait_for(timeout=30_000)
    await item.get_by_role("link").click()
    samples: list[float] = []
    for _ in range(n + 1):  # the first play warms up the camera's encoder
        armed = asyncio.ensure_future(page.evaluate(ARM_CLICK))
        await page.wait_for_function("() => window.armed === true")
        await page.evaluate("() => { window.armed = false; }")
        await page.locator("#play").click()
        samples.append(await armed)
        await page.locator("#play").click()  # Stop
    await page.close()
    return samples[1:]


async def module_plays(
    browser: Browser, url: str, tid: str, user: str, token: str, n: int, trickle: bool
) -> list[float]:
    page = await browser.new_page()
    await page.goto(f"{url}/console/")
    args = {"tid": tid, "accessId": user, "token": token, "trickle": trickle}
    samples = [await page.evaluate(MODULE_PLAY, args) for _ in range(n + 1)]
    await page.close()
    return samples[1:]


async def whep_plays(
    browser: Browser, url: str, tid: str, token: str, n: int, trickle: bool
) -> list[float]:
    page = await browser.new_page()  # about:blank: a page of another origin
    samples: list[float] = []
    watch = {"url": f"{url}/whep/{tid}?definition=low", "token": token, "trickle": trickle}
    for _ in range(n + 1):
        got: dict[str, Any] = await page.evaluate(WHEP_WATCH, watch)
        assert got["status"] == 201, got
        samples.append(got["first_ms"])
        await page.evaluate(
            """async ({base, token}) => {
              await fetch(base + window.whep.location,
                          {method: "DELETE", headers: {Authorization: "Bearer " + token}});
              window.whep.pc.close();
              document.querySelectorAll("video").forEach((v) => v.remove());
            }""",
            {"base": url, "token": token},
        )
    await page.close()
    return samples[1:]


async def page_loads(browser: Browser, url: str, n: int) -> tuple[list[float], int, int]:
    samples: list[float] = []
    size = files = 0
    for _ in range(n):
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{url}/console/", wait_until="commit")
        await page.get_by_label("AccessId").wait_for()
        loaded = await page.evaluate(LOADED)
        samples.append(loaded["interactive"])
        size, files = loaded["bytes"], loaded["files"]
        await context.close()
    return samples, size, files


async def run(args: argparse.Namespace, cloud: Cloud, data: Path) -> None:
    vendor = Vendor(cloud)
    devices, user, token = await asyncio.to_thread(vendor.setup)
    camera = Camera(cloud, devices[0].Certificate, data)
    tid = devices[0].Tid
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            try:
                print(
                    f"Chromium, click or POST to first frame, {args.plays} plays (ms):", flush=True
                )
                report(
                    "console click on Watch (trickle ICE)",
                    await console_clicks(browser, cloud.url, tid, user, token, args.plays),
                )
                report(
                    "console modules, trickle ICE",
                    await module_plays(browser, cloud.url, tid, user, token, args.plays, True),
                )
                report(
                    "console modules, complete offer",
                    await module_plays(browser, cloud.url, tid, user, token, args.plays, False),
                )
                report(
                    "WHEP, trickle ICE (PATCH)",
                    await whep_plays(browser, cloud.url, tid, token, args.plays, True),
                )
                report(
                    "WHEP, complete offer",
                    await whep_plays(browser, cloud.url, tid, token, args.plays, False),
                )
                loads, size, files = await page_loads(browser, cloud.url, args.loads)
                print(f"console page load to interactive, {args.loads} loads, nothing cached (ms):")
                report(f"sign-in form shown ({files} files, {size / 1024:.1f} KiB)", loads)
                hls_kib = HLS.stat().st_size / 1024
                print(f"  hls.js, loaded when a cloud recording first plays: {hls_kib:.1f} KiB")
            finally:
                await browser.close()
    finally:
        camera.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plays", type=int, default=20)
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    started = time.perf_counter()
    run_with_cloud(run, args)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
