"""WHEP: Debian's Chromium (driven by Playwright, default settings but loopback ICE)
watches a simulated camera through POST /whep/<tid>, from a page of another origin (CORS),
then ends the session with DELETE; refusals carry the seed's codes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from iotvideo.app.player import MonitorPlayer
from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.world import World, app_sdk
from tests.live.browser import WHEP_WATCH
from tests.live.helpers import live

END = """
async ({base, token}) => {
  const res = await fetch(base + window.whep.location, {
    method: "DELETE", headers: {"Authorization": "Bearer " + token},
  });
  window.whep.pc.close();
  return res.status;
}
"""


@pytest.mark.parametrize("trickle", [True, False], ids=["trickle", "complete-offer"])
async def test_a_browser_watches_a_camera_over_whep(
    world: World, chromium: Browser, trickle: bool
) -> None:
    tid = world.device.tid
    url = f"{world.cloud.url}/whep/{tid}?definition=mid"
    async with live(world) as lv:
        page = await chromium.new_page()  # about:blank: every request is cross-origin
        watched: dict[str, Any] = await page.evaluate(
            WHEP_WATCH, {"url": url, "token": world.owner.token, "trickle": trickle}
        )
        assert watched["status"] == 201, watched
        assert (watched["width"], watched["height"]) == (640, 360)
        assert watched["codec"] == "video/H264"
        assert watched["location"].startswith(f"/whep/{tid}/")
        if trickle:  # the candidates went as PATCHes, each taken
            assert watched["patches"] and set(watched["patches"]) == {204}
        else:
            assert watched["patches"] == []
        assert len(lv.media.sessions) == 1  # a viewing channel, like any player
        status = await page.evaluate(END, {"base": world.cloud.url, "token": world.owner.token})
        assert status == 200
        assert not lv.media.sessions  # the device ended it
        await page.close()


async def test_whep_refusals_carry_the_seed_codes(world: World) -> None:
    offer = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    sdp = {"Content-Type": "application/sdp"}
    async with live(world) as lv, httpx.AsyncClient(base_url=world.cloud.url) as http:
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
        frag = {"Content-Type": "application/trickle-ice-sdpfrag"}
        owner = {"Authorization": f"Bearer {world.owner.token}"}
        patch = await http.patch(f"/whep/{tid}/1/x", content="a=end-of-candidates\r\n")
        assert patch.status_code == 415  # not an SDP fragment
        forged_patch = await http.patch(
            f"/whep/{tid}/1/{'0' * 32}", content="a=end-of-candidates\r\n", headers=frag | owner
        )
        assert (forged_patch.status_code, forged_patch.json()["code"]) == (404, 20143)
        assert not lv.media.sessions  # nothing refused was started on the device
        forged = await http.delete(
            f"/whep/{tid}/1/{'0' * 32}", headers={"Authorization": f"Bearer {world.owner.token}"}
        )
        assert forged.status_code == 404


async def test_trickled_candidates_over_the_link(world: World) -> None:
    """media.candidate reaches the asker's own session only; what cannot be read is refused
    with 20143 and the session goes on."""
    tid = world.device.tid
    async with live(world) as lv:
        player = MonitorPlayer(tid, sdk=lv.sdk)
        await player.play()
        (session,) = lv.media.sessions
        ok = {"tid": tid, "session": session.id, "mid": "0"}
        host = "candidate:1 1 udp 2122260223 127.0.0.1 9 typ host"
        assert await lv.sdk.request("media.candidate", ok | {"candidate": host}) == {}
        for bad in (
            ok | {"candidate": "candidate:1 x"},  # not a candidate
            ok | {"candidate": "x" * 600},  # too long
            ok | {"session": session.id + 1, "candidate": host},  # no such session
            {"tid": tid, "session": session.id, "candidate": host},  # no mid nor index
        ):
            with pytest.raises(IVError) as refused:
                await lv.sdk.request("media.candidate", bad)
            assert refused.value.code == ErrorCode.IVTermErr_msg_user_cmd_param_error
        # The guest may reach the device, but the session is the owner's.
        async with app_sdk(world.cloud.url, world.guest) as guest:
            with pytest.raises(IVError) as refused:
                await guest.request("media.candidate", ok | {"candidate": host})
            assert refused.value.code == ErrorCode.IVTermErr_msg_user_cmd_param_error
        assert lv.media.sessions == {session}
        await player.stop()
