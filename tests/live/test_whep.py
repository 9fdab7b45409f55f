"""WHEP: Debian's Chromium (driven by Playwright, default settings but loopback ICE)
watches a simulated camera through POST /whep/<tid>, from a page of another origin (CORS),
then ends the session with DELETE; refusals carry the seed's codes."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Browser

from tests.link.world import World
from tests.live.helpers import live

# A WHEP client as any page would write it: complete offer, POST, answer, first frame.
WATCH = """
async ({url, token}) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  pc.ontrack = (e) => {
    if (e.track.kind === "video") video.srcObject = new MediaStream([e.track]);
  };
  const t0 = performance.now();
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  const res = await fetch(url, {
    method: "POST",
    headers: {"Content-Type": "application/sdp", "Authorization": "Bearer " + token},
    body: pc.localDescription.sdp,
  });
  if (res.status !== 201) return {status: res.status, body: await res.json()};
  const location = res.headers.get("Location");
  await pc.setRemoteDescription({type: "answer", sdp: await res.text()});
  await new Promise((resolve, reject) => {
    video.requestVideoFrameCallback(() => resolve());
    setTimeout(() => reject(new Error("no video in 10 s")), 10000);
  });
  const stats = [...(await pc.getStats()).values()];
  const inbound = stats.find((s) => s.type === "inbound-rtp" && s.kind === "video");
  const codec = stats.find((s) => s.id === inbound.codecId);
  window.whep = {pc, location};
  return {
    status: 201, location, first_ms: performance.now() - t0,
    width: video.videoWidth, height: video.videoHeight, codec: codec.mimeType,
  };
}
"""

END = """
async ({base, token}) => {
  const res = await fetch(base + window.whep.location, {
    method: "DELETE", headers: {"Authorization": "Bearer " + token},
  });
  window.whep.pc.close();
  return res.status;
}
"""


async def test_a_browser_watches_a_camera_over_whep(world: World, chromium: Browser) -> None:
    tid = world.device.tid
    url = f"{world.cloud.url}/whep/{tid}?definition=mid"
    async with live(world) as lv:
        page = await chromium.new_page()  # about:blank: every request is cross-origin
        watched: dict[str, Any] = await page.evaluate(
            WATCH, {"url": url, "token": world.owner.token}
        )
        assert watched["status"] == 201, watched
        assert (watched["width"], watched["height"]) == (640, 360)
        assert watched["codec"] == "video/H264"
        assert watched["location"].startswith(f"/whep/{tid}/")
        assert len(lv.media.sessions) == 1  # a viewing channel, like any player
        status = await page.evaluate(END, {"base": world.cloud.url, "token": world.owner.token})
        assert status == 200
        assert not lv.media.sessions  # the device ended it
        await page.close()


async def test_whep_refusals_carry_the_seed_codes(world: World) -> None:
    offer = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    sdp = {"Content-Type": "application/sdp"}
    async with live(world), httpx.AsyncClient(base_url=world.cloud.url) as http:
        tid = world.device.tid

        async def post(tid: str, token: str, headers: dict[str, str] = sdp) -> httpx.Response:
            auth = {"Authorization": f"Bearer {token}"}
            return await http.post(f"/whep/{tid}", content=offer, headers=headers | auth)

        unknown = await post(tid, "usr_nope")
        assert (unknown.status_code, unknown.json()["code"]) == (401, 20010)
        stranger = await post(tid, world.stranger.token)
        assert (stranger.status_code, stranger.json()["code"]) == (403, 8003)
        missing = await post("NOSUCHDEVICE", world.owner.token)
        assert (missing.status_code, missing.json()["code"]) == (404, 8002)
        offline = await post(world.devices[1].tid, world.owner.token)
        assert offline.status_code in (403, 409)  # 409 (8000) when the owner is bound to it
        wrong_type = await post(tid, world.owner.token, {"Content-Type": "text/plain"})
        assert wrong_type.status_code == 415
        malformed = await post(tid, world.owner.token)
        assert malformed.status_code == 400  # the device could not read that offer
        assert malformed.headers["access-control-allow-origin"] == "*"
        preflight = await http.options(f"/whep/{tid}")
        assert preflight.status_code == 204
        assert "Authorization" in preflight.headers["access-control-allow-headers"]
        assert (await http.patch(f"/whep/{tid}/1/x")).status_code == 405
        forged = await http.delete(
            f"/whep/{tid}/1/{'0' * 32}", headers={"Authorization": f"Bearer {world.owner.token}"}
        )
        assert forged.status_code == 404
