"""The iotvideo integration in real Home Assistant core, against a real cloud and cameras.

What a user would notice: the config flow signs in (and says why it cannot); each camera
is a device whose entities follow its thing model with the right types and units; a
switch toggled in Home Assistant changes the camera's setting and the state comes back
from the camera's own report; a button runs the action; a camera that goes away turns
its connectivity sensor off; a motion event fires ``iotvideo_event`` and turns the motion
sensor on, then off at the event's end; a revoked token asks for re-authentication;
unloading the entry closes the link.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from custom_components.iotvideo.const import (
    CONF_ACCESS_ID,
    CONF_ACCESS_TOKEN,
    CONF_CLOUD_URL,
    CONF_RTSP_URL,
    DOMAIN,
    EVENT_IOTVIDEO,
)
from custom_components.iotvideo.diagnostics import async_get_config_entry_diagnostics
from custom_components.iotvideo.hub import DeviceData
from homeassistant import config_entries
from homeassistant.components.camera import (
    DATA_COMPONENT,
    WebRTCAnswer,
    WebRTCMessage,
    async_get_image,
    async_get_stream_source,
)
from homeassistant.components.image import DATA_COMPONENT as IMAGE_COMPONENT
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from PIL import Image
from pytest_homeassistant_custom_component.common import MockConfigEntry

from iotvideo.app.status import LinkStatus
from iotvideo.device import DeviceClient
from iotvideo.device.simulator import SimulatedCamera
from iotvideo.protocol.link import Backoff

from .conftest import Platform


def entry_of(platform: Platform, token: str | None = None) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=platform.access_id,
        unique_id=f"{platform.url} {platform.access_id}",
        data={
            CONF_CLOUD_URL: platform.url,
            CONF_ACCESS_ID: platform.access_id,
            CONF_ACCESS_TOKEN: token or platform.access_token,
        },
    )


async def set_up(hass: HomeAssistant, platform: Platform, token: str | None = None) -> Any:
    """The user's config entry, set up (its devices and entities made)."""
    entry = entry_of(platform, token)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@asynccontextmanager
async def camera(platform: Platform, index: int = 1) -> AsyncIterator[SimulatedCamera]:
    """A simulated camera's link in this process (no media): its settings, actions and
    reports, without its random readings."""
    certificate = await asyncio.to_thread(Path(platform.certificates[index]).read_text)
    client = DeviceClient(
        certificate,
        platform.url,
        backoff=Backoff(base=0.05, cap=0.5),
    )
    simulated = SimulatedCamera(client)
    await client.start(timeout=20)
    try:
        yield simulated
    finally:
        await client.stop()


def entity_id(hass: HomeAssistant, platform_name: str, unique_id: str) -> str:
    found = er.async_get(hass).async_get_entity_id(platform_name, DOMAIN, unique_id)
    assert found is not None, f"no {platform_name} entity {unique_id}"
    return found


async def until(check: Any, timeout: float = 15.0) -> None:
    """Until ``check()`` holds: returns true, or returns without an AssertionError (state
    that the cloud or a camera changes on its own time)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                if check() is not False:
                    return
            except AssertionError:
                pass
            await asyncio.sleep(0.05)


async def test_config_flow_signs_in_and_says_why_not(
    hass: HomeAssistant, platform: Platform
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "user"
    good = {
        CONF_CLOUD_URL: platform.url + "/",
        CONF_ACCESS_ID: platform.access_id,
        CONF_ACCESS_TOKEN: platform.access_token,
    }
    for wrong, error in (
        ({CONF_ACCESS_TOKEN: "usr_" + "0" * 64}, "invalid_auth"),
        ({CONF_CLOUD_URL: "http://127.0.0.1:9"}, "cannot_connect"),
        ({CONF_CLOUD_URL: "ftp://127.0.0.1"}, "invalid_url"),
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {**good, **wrong}
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {"base": error}, wrong
    result = await hass.config_entries.flow.async_configure(result["flow_id"], good)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_CLOUD_URL] == platform.url  # the trailing slash dropped
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is config_entries.ConfigEntryState.LOADED
    # The same user again: refused.
    again = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    again = await hass.config_entries.flow.async_configure(again["flow_id"], good)
    assert again["type"] is FlowResultType.ABORT and again["reason"] == "already_configured"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_entities_follow_the_model_and_the_camera(
    hass: HomeAssistant, platform: Platform
) -> None:
    tid = platform.tids[1]
    # The user's name for the camera (ProUser._buildIn's nickName) names the device.
    await hass.async_add_executor_job(
        lambda: platform.vendor(
            "ModifyDeviceProperty", Tid=tid, Branch="ProUser._buildIn.val.nickName", Value="Porch"
        )
    )
    async with camera(platform) as sim:
        entry = await set_up(hass, platform)

        # From the model: types and units.
        led = entity_id(hass, "switch", f"{tid}_w_led")
        night = entity_id(hass, "select", f"{tid}_w_nightMode")
        temperature = entity_id(hass, "sensor", f"{tid}_r_temperature")
        online = entity_id(hass, "binary_sensor", f"{tid}_online")
        motion = entity_id(hass, "binary_sensor", f"{tid}_motion_0")
        assert hass.states.get(night).attributes["options"] == ["0", "1", "2"]
        assert hass.states.get(online).state == STATE_ON
        for value in (0, 1):
            entity_id(hass, "button", f"{tid}_a_cameraOn_{value}")
        entity_id(hass, "camera", f"{tid}_camera_0")

        # A report from the camera: the sensor follows, with the model's unit.
        await sim.client.report("ProReadonly.temperature", 23.5)
        await until(lambda: hass.states.get(temperature).state == "23.5")
        assert hass.states.get(temperature).attributes["unit_of_measurement"] == "°C"

        # The switch changes the camera's setting; the state comes back from its report.
        await hass.services.async_call("switch", "turn_off", {"entity_id": led}, blocking=True)
        await until(lambda: hass.states.get(led).state == STATE_OFF)
        assert sim.led is False
        await hass.services.async_call(
            "select", "select_option", {"entity_id": night, "option": "2"}, blocking=True
        )
        await until(lambda: hass.states.get(night).state == "2")
        assert sim.night_mode == 2

        # A button runs the action.
        await hass.services.async_call(
            "button", "press", {"entity_id": entity_id(hass, "button", f"{tid}_a_cameraOn_0")},
            blocking=True,
        )  # fmt: skip
        assert sim.camera_on == 0

        # A motion event: iotvideo_event fires, the sensor turns on, then off at its end.
        fired: list[dict[str, Any]] = []

        @callback
        def heard(event: Event) -> None:
            fired.append(event.data)

        hass.bus.async_listen(EVENT_IOTVIDEO, heard)
        await sim.client.event("motion", {"chn": 0, "start": 1, "score": 0.9})
        await until(lambda: hass.states.get(motion).state == STATE_ON)
        await hass.async_block_till_done()  # (listeners run after the firing)
        assert fired[-1]["tid"] == tid and fired[-1]["topic"] == "motion"
        await sim.client.event("motion", {"chn": 0, "start": 1, "end": 2, "score": 0.9})
        await until(lambda: hass.states.get(motion).state == STATE_OFF)

        # Numbers and texts: the model's bounds and unit; written to the camera.
        volume = entity_id(hass, "number", f"{tid}_w_volume")
        attributes = hass.states.get(volume).attributes
        assert (attributes["min"], attributes["max"], attributes["unit_of_measurement"]) == (
            0,
            100,
            "%",
        )
        await hass.services.async_call(
            "number", "set_value", {"entity_id": volume, "value": 35}, blocking=True
        )
        await until(lambda: hass.states.get(volume).state in ("35", "35.0"))
        assert sim.client.writable["volume"] == 35
        osd = entity_id(hass, "text", f"{tid}_w_osdText")
        assert hass.states.get(osd).attributes["max"] == 32
        await hass.services.async_call(
            "text", "set_value", {"entity_id": osd, "value": "Front door"}, blocking=True
        )
        await until(lambda: hass.states.get(osd).state == "Front door")

        # Passthrough data (a service: it has no entity), the camera's answer returned.
        device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, tid)})
        assert device is not None and device.name == "Porch"
        answer = await hass.services.async_call(
            DOMAIN, "send_data", {"device_id": device.id, "data": "ping"},
            blocking=True, return_response=True,
        )  # fmt: skip
        assert json.loads(answer["reply"]) == {"topic": "", "echo": "PING"}
        # The address of the camera's cloud recording between two times (HLS).
        window = {
            "device_id": device.id,
            "start": "2026-12-07 10:00:00",
            "end": "2026-12-07 10:05:00",
        }
        played = await hass.services.async_call(
            DOMAIN, "playback_url", window, blocking=True, return_response=True
        )
        assert "/vas/hls/" in played["url"] and played["url"].endswith(".m3u8")
        with pytest.raises(HomeAssistantError, match="20143"):
            await hass.services.async_call(
                DOMAIN, "playback_url", {**window, "end": window["start"]},
                blocking=True, return_response=True,
            )  # fmt: skip
        # Diagnostics: the models and values, no secret.
        diagnostics = await async_get_config_entry_diagnostics(hass, entry)
        assert diagnostics["devices"][tid]["model"]["ProWritable"]["led"]["type"] == "bool"
        text = json.dumps(diagnostics)
        assert platform.access_token not in text and "**REDACTED**" in text

    # The camera goes away: the connectivity sensor turns off, its entities unavailable.
    await until(lambda: hass.states.get(online).state == STATE_OFF, timeout=20)
    await until(lambda: hass.states.get(led).state == "unavailable")
    hub = entry.runtime_data
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert hub.sdk.link_status is LinkStatus.UNREGISTERED


async def test_a_revoked_token_asks_to_sign_in_again(
    hass: HomeAssistant, platform: Platform
) -> None:
    first = platform.vendor(
        "CreateUsrToken", AccessId=platform.access_id, UniqueId="ha-reauth", TtlMinutes=60
    )["AccessToken"]
    entry = await set_up(hass, platform, first)
    # Renewing revokes the old token: the cloud ends its session, Home Assistant asks.
    second = platform.vendor(
        "CreateUsrToken", AccessId=platform.access_id, UniqueId="ha-reauth", TtlMinutes=60,
        OldAccessToken=first,
    )["AccessToken"]  # fmt: skip

    def reauth_started() -> None:
        flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert any(f["context"]["source"] == config_entries.SOURCE_REAUTH for f in flows)

    await until(reauth_started)
    (flow,) = [
        f
        for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if f["context"]["source"] == config_entries.SOURCE_REAUTH
    ]
    wrong = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_ACCESS_TOKEN: first}
    )
    assert wrong["errors"] == {"base": "invalid_auth"}
    done = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_ACCESS_TOKEN: second}
    )
    assert done["type"] is FlowResultType.ABORT and done["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_ACCESS_TOKEN] == second
    assert entry.state is config_entries.ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_setup_with_an_expired_token_starts_reauth(
    hass: HomeAssistant, platform: Platform
) -> None:
    entry = entry_of(platform, "usr_" + "1" * 64)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is config_entries.ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == [config_entries.SOURCE_REAUTH]
    assert entry.data[CONF_ACCESS_TOKEN] == "usr_" + "1" * 64  # kept until re-authenticated


async def test_the_camera_image_and_the_restream_stream_source(
    hass: HomeAssistant, platform: Platform
) -> None:
    """The still image is a JPEG at the camera's size, taken from the device itself; the
    stream source is restream's RTSP URL, which ffprobe plays."""
    tid = platform.tids[0]
    await hass.async_add_executor_job(platform.start_camera, 0)
    restream = await hass.async_add_executor_job(platform.start_restream)
    try:
        entry = await set_up(hass, platform)
        camera_entity = entity_id(hass, "camera", f"{tid}_camera_0")
        online = entity_id(hass, "binary_sensor", f"{tid}_online")
        await until(lambda: hass.states.get(online).state == STATE_ON, timeout=30)
        image = await async_get_image(hass, camera_entity, timeout=30)
        assert image.content_type == "image/jpeg"
        picture = Image.open(io.BytesIO(image.content))
        assert picture.format == "JPEG"

        # Native WebRTC: a browser's offer (aiortc here) reaches the device through the
        # platform's signaling; the answer comes back and the video plays.
        assert await watch_over_webrtc(hass, camera_entity) == picture.size

        # With restream's RTSP URL in the options, the camera streams from it.
        hass.config_entries.async_update_entry(entry, options={CONF_RTSP_URL: restream})
        await hass.async_block_till_done()
        source = await async_get_stream_source(hass, camera_entity)
        assert source == f"{restream}/{tid}"
        probed = await hass.async_add_executor_job(
            lambda: subprocess.run(
                ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
                 "stream=codec_name,width,height", "-of", "csv=p=0", source],
                capture_output=True, text=True, timeout=60, check=False,
            )
        )  # fmt: skip
        codec, width, height = probed.stdout.strip().splitlines()[0].split(",")
        assert codec == "h264", probed.stderr
        assert picture.size == (int(width), int(height)), "the still is the stream's size"
        # The camera's process dies (no logout): the connectivity sensor turns off.
        platform.cameras[tid].proc.kill()
        await until(lambda: hass.states.get(online).state == STATE_OFF, timeout=30)
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await hass.async_add_executor_job(platform.stop_restream)
        await hass.async_add_executor_job(platform.stop_camera, 0)


async def watch_over_webrtc(hass: HomeAssistant, camera_entity: str) -> tuple[int, int]:
    """Play the camera as Home Assistant's frontend would with native WebRTC: the size of
    the first picture received."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    entity = hass.data[DATA_COMPONENT].get_entity(camera_entity)
    assert entity is not None
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    answered: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def send(message: WebRTCMessage) -> None:
        if isinstance(message, WebRTCAnswer):
            answered.set_result(message.answer)
        elif not answered.done():
            answered.set_exception(AssertionError(f"no answer: {message}"))

    try:
        await entity.async_handle_async_webrtc_offer(pc.localDescription.sdp, "ha-1", send)
        answer = await asyncio.wait_for(answered, 20)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        video = next(t.receiver.track for t in pc.getTransceivers() if t.kind == "video")
        frame = await asyncio.wait_for(video.recv(), 20)
        return frame.width, frame.height
    finally:
        entity.close_webrtc_session("ha-1")
        await pc.close()
        await hass.async_block_till_done()


def test_a_gateways_channels_are_cameras() -> None:
    """A gateway's model (ProReadonly.chn1..N) gives a camera (and a motion sensor) per
    channel; any other model, one."""
    gateway = DeviceData(
        "T", {"ProReadonly": {"chn2": {"type": "json"}, "chn1": {"type": "json"}}}, {}
    )
    assert gateway.channels == [1, 2]
    assert DeviceData("T", {"ProReadonly": {"temperature": {}}}, {}).channels == [0]


async def test_an_event_picture_for_notifications(hass: HomeAssistant, platform: Platform) -> None:
    """A camera recording to the cloud raises motion: the image entity shows the event's
    picture (what a notification attaches)."""
    tid = platform.tids[0]
    await hass.async_add_executor_job(
        lambda: platform.vendor("CreateStorageService", PkgId="yc1m3d", Tid=tid)
    )
    await hass.async_add_executor_job(lambda: platform.start_camera(0, motion_interval=1.5))
    try:
        entry = await set_up(hass, platform)
        picture = entity_id(hass, "image", f"{tid}_picture_0")
        assert hass.states.get(picture).state == "unknown"
        await until(
            lambda: hass.states.get(picture).state not in ("unknown", "unavailable"), timeout=60
        )
        entity = hass.data[IMAGE_COMPONENT].get_entity(picture)
        assert entity is not None
        jpeg = await entity.async_image()
        assert jpeg is not None and Image.open(io.BytesIO(jpeg)).format == "JPEG"
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await hass.async_add_executor_job(platform.stop_camera, 0)
