"""Debian's Chromium driven by Playwright for the browser tests (WHEP, the console)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, async_playwright

CHROMIUM_ARGS = [
    "--allow-loopback-in-peer-connection",  # ICE on loopback (the test's only network)
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A fake microphone (a beep) that needs no permission prompt: the console's talk.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


@asynccontextmanager
async def chromium_browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


# A WHEP client as any page would write it: POST the offer, apply the answer, wait for the
# first frame. With ``trickle`` the offer goes out before ICE gathering ends and the
# candidates follow as SDP fragments (PATCH); without it the offer carries them all.
WHEP_WATCH = r"""
async ({url, token, trickle}) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  pc.ontrack = (e) => {
    if (e.track.kind === "video") video.srcObject = new MediaStream([e.track]);
  };
  let location = null;
  const early = [];
  const patches = [];
  const patch = (lines) => patches.push(fetch(new URL(location, url), {
    method: "PATCH",
    headers: {"Content-Type": "application/trickle-ice-sdpfrag",
              "Authorization": "Bearer " + token},
    body: lines.join("\r\n") + "\r\n",
  }).then((r) => r.status));
  pc.onicecandidate = (e) => {
    if (!trickle) return;
    const lines = e.candidate && e.candidate.candidate
      ? ["a=mid:" + e.candidate.sdpMid, "a=" + e.candidate.candidate]
      : ["a=end-of-candidates"];
    if (location === null) early.push(lines); else patch(lines);
  };
  const t0 = performance.now();
  await pc.setLocalDescription(await pc.createOffer());
  if (!trickle) {
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve();
      });
    });
  }
  const res = await fetch(url, {
    method: "POST",
    headers: {"Content-Type": "application/sdp", "Authorization": "Bearer " + token},
    body: pc.localDescription.sdp,
  });
  if (res.status !== 201) return {status: res.status, body: await res.json()};
  location = res.headers.get("Location");
  await pc.setRemoteDescription({type: "answer", sdp: await res.text()});
  if (early.length) patch(early.splice(0).flat());
  await new Promise((resolve, reject) => {
    video.requestVideoFrameCallback(() => resolve());
    setTimeout(() => reject(new Error("no video in 10 s")), 10000);
  });
  const first_ms = performance.now() - t0;
  const stats = [...(await pc.getStats()).values()];
  const inbound = stats.find((s) => s.type === "inbound-rtp" && s.kind === "video");
  const codec = stats.find((s) => s.id === inbound.codecId);
  window.whep = {pc, location};
  return {
    status: 201, location, first_ms, patches: await Promise.all(patches),
    width: video.videoWidth, height: video.videoHeight, codec: codec.mimeType,
  };
}
"""
