"""The seed's message calls, end to end: app SDK -> cloud process -> device SDK and back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from iotvideo.app import IoTVideo, LinkStatus, LogLevel
from iotvideo.device import DeviceClient
from iotvideo.protocol.errors import AckError, ErrorCode, IVError
from tests.link.world import Inbox, World, app_sdk, device_client, eventually

TEMP = "ProReadonly.temperature"


class Recorder:
    """A device whose handlers record what they get."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Any]] = []
        self.actions: list[Any] = []
        self.reads = 0
        self.data: list[tuple[bytes, str]] = []

    def install(self, dc: DeviceClient) -> None:
        @dc.on_write("nightMode")
        def night(value: Any) -> Any:
            self.writes.append(("nightMode", value))
            return value

        @dc.on_action("cameraOn")
        async def camera_on(value: Any) -> Any:
            self.actions.append(value)
            if value == 0:
                raise AckError(ErrorCode.IVAckErr_DeviceBusy, "busy recording")
            return {"done": value}

        @dc.on_read("temperature")
        def temperature() -> float:
            self.reads += 1
            return 20.0 + self.reads

        @dc.on_data
        def data(payload: bytes, topic: str) -> bytes:
            self.data.append((payload, topic))
            return payload[::-1]


async def _code(work: Any) -> int:
    with pytest.raises(IVError) as info:
        await work
    return int(info.value.code)


async def test_register_and_link_status(world: World) -> None:
    seen: list[LinkStatus] = []

    class Delegate:
        def did_update_link_status(self, status: LinkStatus) -> None:
            seen.append(status)

    sdk = IoTVideo()
    sdk.delegate = Delegate()
    sdk.setup(world.cloud.url)
    assert sdk.link_status is LinkStatus.UNREGISTERED
    await sdk.register(world.owner.access_id, world.owner.token)
    assert sdk.link_status is LinkStatus.ONLINE
    await sdk.unregister()
    assert seen == [LinkStatus.CONNECTING, LinkStatus.ONLINE, LinkStatus.UNREGISTERED]


async def test_bad_token_is_refused_with_20010(world: World) -> None:
    sdk = IoTVideo()
    sdk.setup(world.cloud.url)
    with pytest.raises(IVError) as info:
        await sdk.register(world.owner.access_id, world.guest.token)
    assert info.value.code == ErrorCode.IVTermErr_msg_calling_check_token_error
    assert sdk.link_status is LinkStatus.TOKEN_FAILED
    await sdk.unregister()


async def test_read_whole_model_and_live_readonly(world: World) -> None:
    recorder = Recorder()
    async with (
        device_client(world.cloud.url, world.device, recorder.install),
        app_sdk(world.cloud.url, world.owner) as sdk,
    ):
        model = await sdk.message.read_property(world.device.tid, "")
        assert set(model) == {
            "ProConst",
            "ProReadonly",
            "ProWritable",
            "Action",
            "Event",
            "ProUser",
        }
        assert model["ProReadonly"]["_online"]["stVal"] == 1
        assert model["ProWritable"]["nightMode"] == {
            "setVal": 0,
            "stVal": 0,
            "t": model["ProWritable"]["nightMode"]["t"],
        }
        assert model["ProConst"]["_versionInfo"]["stVal"]["sdkVer"].startswith("iotvideo")
        first = await sdk.message.read_property(world.device.tid, TEMP)
        second = await sdk.message.read_property(world.device.tid, TEMP + ".stVal")
        assert (first["stVal"], second) == (21.0, 22.0), "each read asks the device"
        assert (
            await sdk.message.read_property(world.device.tid, "ProWritable._logLevel.setVal") == 3
        )


@pytest.mark.parametrize(
    "path",
    [
        "Nope.x",
        "ProWritable..x",
        "ProWritable.x y",
        "ProWritable.missing",
        ".".join(["ProUser"] * 20),
    ],
)
async def test_bad_paths_are_20101(world: World, path: str) -> None:
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        assert await _code(sdk.message.read_property(world.device.tid, path)) == 20101


async def test_write_property_in_both_forms(world: World) -> None:
    recorder = Recorder()
    async with (
        device_client(world.cloud.url, world.device, recorder.install),
        app_sdk(world.cloud.url, world.owner) as owner,
        app_sdk(world.cloud.url, world.guest) as guest,
    ):
        inbox = Inbox(guest)
        after = await owner.message.write_property(
            world.device.tid, "ProWritable.nightMode", '{"setVal": 2}'
        )
        assert (after["setVal"], after["stVal"]) == (2, 2)
        await inbox.property("ProWritable.nightMode", setVal=2, stVal=2)
        after = await owner.message.write_property(
            world.device.tid, "ProWritable.nightMode.setVal", "1"
        )
        assert after["stVal"] == 1
        # At login the device applied the value kept in the cloud (0), then the two writes.
        assert recorder.writes == [("nightMode", 0), ("nightMode", 2), ("nightMode", 1)]
        # The LED has no handler on this device: the SDK accepts the value as it is.
        led = await owner.message.write_property(world.device.tid, "ProWritable.led.setVal", False)
        assert led["stVal"] is False


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        ("ProWritable.nightMode", '{"setVal": 7}', 20143),
        ("ProWritable.nightMode.setVal", '"two"', 20143),
        ("ProWritable.nightMode", "{not json", 20102),
        ("ProWritable.nightMode", '{"ctlVal": 1}', 20143),
        ("ProReadonly.temperature.stVal", "3", 20101),
        ("ProWritable.nightMode.stVal", "1", 20101),
        ("ProWritable.nope.setVal", "1", 20101),
        ("Action.cameraOn.ctlVal", "1", 20101),
    ],
)
async def test_refused_writes_change_nothing(
    world: World, path: str, value: str, code: int
) -> None:
    recorder = Recorder()
    async with (
        device_client(world.cloud.url, world.device, recorder.install),
        app_sdk(world.cloud.url, world.owner) as sdk,
    ):
        before = await sdk.message.read_property(world.device.tid, "ProWritable")
        assert await _code(sdk.message.write_property(world.device.tid, path, value)) == code
        assert await sdk.message.read_property(world.device.tid, "ProWritable") == before
        assert recorder.writes == [("nightMode", 0)], "only the login's sync reached the device"


async def test_actions(world: World) -> None:
    recorder = Recorder()
    async with app_sdk(world.cloud.url, world.guest) as guest:
        assert (
            await _code(
                guest.message.take_action(world.device.tid, "Action.cameraOn", '{"ctlVal": 1}')
            )
            == 8000
        )
        async with device_client(world.cloud.url, world.device, recorder.install):
            answer = await guest.message.take_action(
                world.device.tid, "Action.cameraOn", '{"ctlVal": 1}'
            )
            assert answer == {"done": 1}
            assert await guest.message.read_property(world.device.tid, "Action.cameraOn.stVal") == 1
            busy = guest.message.take_action(world.device.tid, "Action.cameraOn.ctlVal", "0")
            assert await _code(busy) == ErrorCode.IVAckErr_DeviceBusy
            no_handler = guest.message.take_action(world.device.tid, "Action._otaVersion", "{}")
            assert await _code(no_handler) == 8003, "built-in actions are the owner's"
        assert recorder.actions == [1, 0]


async def test_action_without_handler_is_20104(world: World) -> None:
    async with (
        device_client(world.cloud.url, world.device),
        app_sdk(world.cloud.url, world.owner) as sdk,
    ):
        work = sdk.message.take_action(world.device.tid, "Action.cameraOn", '{"ctlVal": 1}')
        assert await _code(work) == ErrorCode.IVTermErr_msg_gdm_handle_no_cb_registered


async def test_user_properties(world: World) -> None:
    async with (
        app_sdk(world.cloud.url, world.owner) as sdk,
        app_sdk(world.cloud.url, world.guest) as guest,
    ):
        tid = world.device.tid
        added = await sdk.message.add_property(tid, "ProUser.userPro1", '{"key": "value"}')
        assert added["val"] == {"key": "value"}
        await sdk.message.add_property(tid, "ProUser.userPro1", '{"key": "again"}')
        await sdk.message.write_property(tid, "ProUser.userPro1.val", '{"testKey": "new"}')
        assert await sdk.message.read_property(tid, "ProUser.userPro1.val") == {"testKey": "new"}
        await sdk.message.write_property(tid, "ProUser._buildIn.val.nickName", '"Porch"')
        built_in = await sdk.message.read_property(tid, "ProUser._buildIn.val")
        assert built_in == {"almEvtPushEna": 0, "nickName": "Porch"}, "a field write merges"
        assert await _code(sdk.message.add_property(tid, "ProUser._mine", "1")) == 8605
        assert await _code(sdk.message.delete_property(tid, "ProUser._buildIn")) == 8605
        assert await _code(guest.message.add_property(tid, "ProUser.guestPro", "1")) == 8003
        assert (
            await _code(guest.message.write_property(tid, "ProUser._buildIn.val.nickName", '"x"'))
            == 8003
        )
        await sdk.message.delete_property(tid, "ProUser.userPro1")
        assert await _code(sdk.message.read_property(tid, "ProUser.userPro1")) == 20101
        assert await _code(sdk.message.delete_property(tid, "ProUser.userPro1")) == 20101


async def test_events_and_property_changes_reach_watching_apps(world: World) -> None:
    events: list[tuple[str, str]] = []

    class Delegate:
        def did_receive_event(self, event: str, topic: str) -> None:
            events.append((event, topic))

    async with (
        device_client(world.cloud.url, world.device) as dc,
        app_sdk(world.cloud.url, world.guest) as sdk,
    ):
        sdk.message.delegate = Delegate()
        inbox = Inbox(sdk)
        await dc.event("motion", {"zone": 3})
        motion = await inbox.next(lambda m: m.kind == "event")
        assert (motion.device_id, motion.name, motion.value) == (
            world.device.tid,
            "motion",
            {"zone": 3},
        )
        assert json.loads(events[0][0])["value"] == {"zone": 3} and events[0][1] == "motion"
        await dc.report(TEMP, 30.5)
        change = await inbox.property(TEMP, stVal=30.5)
        assert change.device_id == world.device.tid
        with pytest.raises(IVError) as info:
            await dc.report(TEMP, "hot")
        assert info.value.code == 20143
        with pytest.raises(IVError):
            await dc.report("ProReadonly.nope", 1)


async def test_passthrough_data(world: World) -> None:
    recorder = Recorder()
    async with (
        device_client(world.cloud.url, world.device, recorder.install),
        app_sdk(world.cloud.url, world.owner) as sdk,
    ):
        answer = await sdk.message.send_data_to_device(
            world.device.tid, b"hello", expect_response=True
        )
        assert answer == b"olleh"
        assert await sdk.message.send_data_to_device(world.device.tid, b"no reply") is None
        assert recorder.data == [(b"hello", ""), (b"no reply", "")]
        too_big = sdk.message.send_data_to_device(world.device.tid, b"x" * 30001)
        assert await _code(too_big) == ErrorCode.IVMessageError_ExceedsMaxLength
        exact = await sdk.message.send_data_to_device(
            world.device.tid, b"y" * 30000, expect_response=True
        )
        assert exact == b"y" * 30000


async def test_callback_style(world: World) -> None:
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        done: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        sdk.message.read_property(
            world.device.tid,
            "ProWritable._logLevel",
            completion=lambda j, e: done.set_result((j, e)),
        )
        text, error = await done
        assert error is None and json.loads(text)["setVal"] == 3
        failed: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        sdk.message.read_property(
            world.device.tid, "Bad.path", completion=lambda j, e: failed.set_result((j, e))
        )
        text, error = await failed
        assert text is None and error.code == 20101


async def test_sleep_and_wake(world: World) -> None:
    async with (
        device_client(world.cloud.url, world.device) as dc,
        app_sdk(world.cloud.url, world.guest) as sdk,
    ):
        inbox = Inbox(sdk)
        await dc.set_sleeping(True)
        await inbox.property("ProReadonly._online", stVal=2)
        assert await sdk.message.read_property(world.device.tid, "ProReadonly._online.stVal") == 2
        await dc.set_sleeping(False)
        await inbox.property("ProReadonly._online", stVal=1)


async def test_log_level_and_log_delegate(world: World) -> None:
    lines: list[str] = []

    class Delegate:
        def did_output_pretty_log_message(self, message: str) -> None:
            lines.append(message)

    sdk = IoTVideo()
    sdk.delegate = Delegate()
    sdk.log_level = LogLevel.INFO
    sdk.setup(world.cloud.url)
    await sdk.register(world.owner.access_id, world.owner.token)
    await sdk.unregister()
    assert any("link status: online" in line for line in lines)
    sdk.log_level = LogLevel.WARNING
    lines.clear()
    await sdk.register(world.owner.access_id, world.owner.token)
    await sdk.unregister()
    assert not any("link status" in line for line in lines)


async def test_a_device_that_does_not_answer_is_21083(world: World) -> None:
    never = asyncio.Event()

    def install(dc: DeviceClient) -> None:
        @dc.on_action("cameraOn")
        async def stuck(_value: Any) -> None:
            await never.wait()

    async with (
        device_client(world.cloud.url, world.device, install),
        app_sdk(world.cloud.url, world.owner) as sdk,
    ):
        work = sdk.message.take_action(
            world.device.tid, "Action.cameraOn", '{"ctlVal": 1}', timeout=0.5
        )
        assert await _code(work) == ErrorCode.IVAckErr_NoResponse
        never.set()


async def test_a_refused_write_does_not_undo_a_later_one(world: World) -> None:
    """The device refuses 1 only after the owner's next write (2) was applied: 2 stands."""
    got_one, refuse = asyncio.Event(), asyncio.Event()

    def install(dc: DeviceClient) -> None:
        @dc.on_write("nightMode")
        async def night(value: Any) -> Any:
            if value == 1:
                got_one.set()
                await refuse.wait()
                raise AckError(ErrorCode.IVAckErr_ParameterErr, "not now")
            return value

    path = "ProWritable.nightMode.setVal"
    async with (
        device_client(world.cloud.url, world.device, install),
        app_sdk(world.cloud.url, world.owner) as sdk,
    ):
        first = asyncio.ensure_future(sdk.message.write_property(world.device.tid, path, "1"))
        await got_one.wait()
        second = await sdk.message.write_property(world.device.tid, path, "2")
        assert (second["setVal"], second["stVal"]) == (2, 2)
        refuse.set()
        with pytest.raises(IVError) as refused:
            await first
        assert refused.value.code == ErrorCode.IVAckErr_ParameterErr
        now = await sdk.message.read_property(world.device.tid, "ProWritable.nightMode")
        assert (now["setVal"], now["stVal"]) == (2, 2)


async def test_a_writer_leaving_mid_write_does_not_lose_the_devices_answer(world: World) -> None:
    got, release = asyncio.Event(), asyncio.Event()

    def install(dc: DeviceClient) -> None:
        @dc.on_write("nightMode")
        async def night(value: Any) -> Any:
            if value == 2:
                got.set()
                await release.wait()
            return value

    path = "ProWritable.nightMode"
    async with device_client(world.cloud.url, world.device, install):
        async with app_sdk(world.cloud.url, world.owner) as writer:
            pending = asyncio.ensure_future(
                writer.message.write_property(world.device.tid, path + ".setVal", "2")
            )
            await got.wait()
        # The writer is gone (its session ended); the device applies the value now.
        release.set()
        with pytest.raises(IVError):
            await pending
        async with app_sdk(world.cloud.url, world.guest) as reader:

            async def confirmed() -> None:
                state = await reader.message.read_property(world.device.tid, path)
                assert (state["setVal"], state["stVal"]) == (2, 2), state

            await eventually(confirmed)


async def test_each_delegate_gets_its_own_instances_lines_only(world: World) -> None:
    """Two instances in one process (and the cloud's own logging): no line crosses over,
    and making instances adds no log handler each."""
    import logging

    package = logging.getLogger("iotvideo")
    handlers = len(package.handlers)
    lines: dict[str, list[str]] = {"a": [], "b": []}

    class Delegate:
        def __init__(self, name: str) -> None:
            self.name = name

        def did_output_pretty_log_message(self, message: str) -> None:
            lines[self.name].append(message)

    a, b = IoTVideo(), IoTVideo()
    assert len(package.handlers) <= max(handlers, 1), "no handler per instance"
    for sdk, name in ((a, "a"), (b, "b")):
        sdk.delegate = Delegate(name)
        sdk.log_level = LogLevel.INFO
        sdk.setup(world.cloud.url)
    await a.register(world.owner.access_id, world.owner.token)
    with pytest.raises(IVError):
        await b.register(world.owner.access_id, "usr_" + "x" * 43)  # refused
    await a.unregister()
    await b.unregister()
    assert any("link status: online" in line for line in lines["a"])
    assert not any("link status: online" in line for line in lines["b"])
    assert any("login refused" in line for line in lines["b"])
    assert not any("login refused" in line for line in lines["a"])


async def test_an_app_offline_when_events_came_gets_them_at_reconnect(world: World) -> None:
    async with device_client(world.cloud.url, world.device) as device:
        sdk = IoTVideo()
        sdk.setup(world.cloud.url)
        got: asyncio.Queue[Any] = asyncio.Queue()
        sdk.message.add_listener(lambda m: got.put_nowait(m.value) if m.kind == "event" else None)
        await sdk.register(world.owner.access_id, world.owner.token)
        try:
            await device.event("motion", {"n": 1})
            assert await asyncio.wait_for(got.get(), 10) == {"n": 1}
            await sdk.unregister()  # the app is away...
            for n in (2, 3):
                await device.event("motion", {"n": n})  # ...while these are pushed
            await sdk.register(world.owner.access_id, world.owner.token)
            await device.event("motion", {"n": 4})
            seen = [await asyncio.wait_for(got.get(), 10) for _ in range(3)]
            assert seen == [{"n": 2}, {"n": 3}, {"n": 4}]
            assert got.empty(), "each event once"
        finally:
            await sdk.unregister()
