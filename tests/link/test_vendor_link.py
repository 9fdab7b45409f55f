"""The vendor API's thing-model and device-message actions, through the official client."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from iotvideo.device import DeviceClient
from iotvideo.device.simulator import DEMO_MODEL
from iotvideo.protocol.errors import IVError
from tests.cloud.official import call, client, refused
from tests.link.world import Inbox, World, app_sdk, device_client, eventually
from tests.support import set_webhook, snapshot


def test_model_revisions(world: World) -> None:
    pid = world.product_id
    assert world.vendor("DescribeProduct", ProductId=pid).Data.IotModelRevision == 1
    revisions = world.vendor("DescribeIotModels", ProductId=pid).Data
    assert [r.Revision for r in revisions] == [1]
    assert json.loads(
        world.vendor("DescribeIotModel", ProductId=pid, Revision=1).Data
    ) == json.loads(json.dumps(DEMO_MODEL, sort_keys=True))
    draft = {
        **DEMO_MODEL,
        "ProReadonly": {**DEMO_MODEL["ProReadonly"], "humidity": {"type": "float32"}},
    }
    world.vendor("CreateIotModel", ProductId=pid, IotModel=json.dumps(draft))
    assert "humidity" in world.vendor("DescribeIotModel", ProductId=pid, Revision=-1).Data
    assert world.vendor("DescribeProduct", ProductId=pid).Data.IotModelRevision == 1, (
        "a draft is not live"
    )
    world.vendor("RunIotModel", ProductId=pid, IotModel=json.dumps(draft))
    assert world.vendor("DescribeProduct", ProductId=pid).Data.IotModelRevision == 2
    refused("ResourceNotFound", world.vendor, "DescribeIotModel", ProductId=pid, Revision=-1)
    refused("ResourceNotFound", world.vendor, "DescribeIotModel", ProductId=pid, Revision=9)
    for bad in (
        "{not json",
        "[]",
        '{"Sensors": {}}',
        '{"ProWritable": {"_mine": {"type": "uint32"}}}',
        '{"ProWritable": {"x": {"type": "int128"}}}',
        '{"ProWritable": {"x": {"type": "uint32", "enum": [0, 1], "default": 5}}}',
        '{"ProWritable": {"x": {"type": "struct"}}}',
    ):
        refused("InvalidParameterValue", world.vendor, "RunIotModel", ProductId=pid, IotModel=bad)
    assert world.vendor("DescribeProduct", ProductId=pid).Data.IotModelRevision == 2


async def test_describe_device_model_and_online_state(world: World) -> None:
    tid = world.device.tid
    described = await world.avendor("DescribeDevice", Tid=tid)
    assert (described.Data.Online, described.Data.LastOnlineTime) == (0, 0)
    async with device_client(world.cloud.url, world.device):
        described = await world.avendor("DescribeDevice", Tid=tid)
        assert described.Data.Online == 1 and described.Data.LastOnlineTime > 0
        assert described.Data.OtaVersion == "1.0.0"
        assert json.loads(described.Data.IotModel)["ProReadonly"]["_online"]["stVal"] == 1
        branch = await world.avendor("DescribeDeviceModel", Tid=tid, Branch="ProWritable.nightMode")
        assert json.loads(branch.Data.IotModel)["setVal"] == 0
        assert branch.Data.Branch == "ProWritable.nightMode"
    with pytest.raises(Exception, match="InvalidParameterValue"):
        await world.avendor("DescribeDeviceModel", Tid=tid, Branch="Nope.x")


async def test_clear_device_active_code_until_the_next_login(world: World) -> None:
    tid = world.device.tid
    async with device_client(world.cloud.url, world.device):
        first = (await world.avendor("DescribeDevice", Tid=tid)).Data.ActiveTime
        assert first > 0
    await world.avendor("ClearDeviceActiveCode", Tids=[tid, tid])
    assert (await world.avendor("DescribeDevice", Tid=tid)).Data.ActiveTime == 0
    await world.arefused("ResourceNotFound", "ClearDeviceActiveCode", Tids=[tid, "nope"])
    await world.arefused("InvalidParameterValue", "ClearDeviceActiveCode", Tids=[])
    async with device_client(world.cloud.url, world.device):
        again = (await world.avendor("DescribeDevice", Tid=tid)).Data.ActiveTime
        assert again >= first


async def test_modify_device_property(world: World) -> None:
    tid = world.device.tid
    got: list[Any] = []

    def install(dc: DeviceClient) -> None:
        dc.on_write("nightMode")(lambda v: got.append(v))

    await world.avendor(
        "ModifyDeviceProperty", Tid=tid, Branch="ProWritable.nightMode", Value="1", IsNum=True
    )
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        inbox = Inbox(sdk)
        async with device_client(world.cloud.url, world.device, install):
            await inbox.property("ProWritable.nightMode", stVal=1)  # delivered at login
            await world.avendor(
                "ModifyDeviceProperty",
                Tid=tid,
                Branch="ProWritable.nightMode.setVal",
                Value="2",
                IsNum=True,
            )
            assert got[-1] == 2
            await world.avendor(
                "ModifyDeviceProperty",
                Tid=tid,
                Branch="ProUser._buildIn.val.nickName",
                Value="Gate",
            )
            assert await sdk.message.read_property(tid, "ProUser._buildIn.val.nickName") == "Gate"
        for branch, value, is_num in (
            ("ProWritable.nightMode", "9", True),
            ("ProWritable.nightMode", "x", True),
            ("ProReadonly.temperature", "1", True),
        ):
            with pytest.raises(Exception, match="InvalidParameterValue"):
                await world.avendor(
                    "ModifyDeviceProperty", Tid=tid, Branch=branch, Value=value, IsNum=is_num
                )


async def test_modify_device_action_now_and_late(world: World) -> None:
    tid = world.device.tid
    release = asyncio.Event()

    def install(dc: DeviceClient) -> None:
        @dc.on_action("cameraOn")
        async def camera_on(value: int) -> dict[str, int]:
            if value == 0:
                await release.wait()  # answers after the vendor's wait
            return {"cameraOn": value}

    with pytest.raises(Exception, match="ResourceUnavailable"):
        await world.avendor(
            "ModifyDeviceAction", Tid=tid, Branch="Action.cameraOn", Value="1", IsNum=True
        )
    async with device_client(world.cloud.url, world.device, install):
        now = await world.avendor(
            "ModifyDeviceAction", Tid=tid, Branch="Action.cameraOn", Value="1", IsNum=True
        )
        assert (json.loads(now.Data), now.TaskId) == ({"cameraOn": 1}, "")
        late = await world.avendor(
            "ModifyDeviceAction", Tid=tid, Branch="Action.cameraOn", Value="0", IsNum=True
        )
        assert late.Data == "" and late.TaskId
        with pytest.raises(Exception, match="ResourceUnavailable"):
            await world.avendor("DescribeModelDataRet", TaskId=late.TaskId)
        release.set()

        async def answered() -> Any:
            try:
                return json.loads(
                    (await world.avendor("DescribeModelDataRet", TaskId=late.TaskId)).Data
                )
            except Exception as exc:
                raise AssertionError(str(exc)) from exc

        assert await eventually(answered) == {"cameraOn": 0}
    with pytest.raises(Exception, match="ResourceNotFound"):
        await world.avendor("DescribeModelDataRet", TaskId="task-nope")


async def test_send_online_msg(world: World) -> None:
    tid = world.device.tid
    seen: list[tuple[bytes, str]] = []
    fired = asyncio.Event()

    def install(dc: DeviceClient) -> None:
        @dc.on_data
        def data(payload: bytes, topic: str) -> bytes:
            seen.append((payload, topic))
            if payload == b"fire":
                fired.set()
            return b"pong:" + payload

    with pytest.raises(Exception, match="ResourceUnavailable"):
        await world.avendor("SendOnlineMsg", Tid=tid, WaitResp=0, MsgTopic="t", MsgContent="x")
    async with device_client(world.cloud.url, world.device, install):
        reply = await world.avendor(
            "SendOnlineMsg", Tid=tid, WaitResp=2, MsgTopic="cmd", MsgContent="ping"
        )
        assert reply.Data == "pong:ping"
        acked = await world.avendor(
            "SendOnlineMsg", Tid=tid, WaitResp=1, MsgTopic="cmd", MsgContent="quiet"
        )
        assert (acked.Data, acked.TaskId) == ("", "")
        await world.avendor("SendOnlineMsg", Tid=tid, WaitResp=0, MsgTopic="cmd", MsgContent="fire")

        async with asyncio.timeout(10):
            await fired.wait()  # WaitResp=0 returns before the device has it
        assert (b"fire", "cmd") in seen
        assert seen[:2] == [(b"ping", "cmd"), (b"quiet", "cmd")]
    with pytest.raises(Exception, match="InvalidParameterValue"):
        await world.avendor("SendOnlineMsg", Tid=tid, WaitResp=3, MsgTopic="cmd", MsgContent="x")


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append(body)
        answer = json.dumps({"echo": body["Url"]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Webhook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


async def test_send_data_to_server(world: World, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        with pytest.raises(IVError) as info:
            await sdk.message.send_data_to_server("/orders", b"{}")
        assert info.value.code == 21005, "no webhook configured yet"
        await asyncio.to_thread(set_webhook, world.cloud.db, world.vendor_id, url)
        answer = await sdk.message.send_data_to_server("/orders", b'{"n": 1}')
        assert json.loads(answer) == {"echo": "/orders"}
        assert received[0]["AccessId"] == world.owner.access_id and received[0]["Url"] == "/orders"
        with pytest.raises(IVError) as info:
            await sdk.message.send_data_to_server("/big", b"x" * 30001)
        assert info.value.code == 21008


POSITION = {
    "id": "Position",
    "name": "PTZ position",
    "type": [
        {"name": "pan", "id": "pan", "type": "int32"},
        {"name": "label", "id": "label", "type": "string16"},
        {"name": "zoom", "id": "zoom", "type": [{"name": "level", "id": "level", "type": "float"}]},
    ],
}


def test_custom_data_types_in_a_model(world: World) -> None:
    cloud = world.cloud
    text = json.dumps(POSITION)
    world.vendor("CreateIotDataType", IotDataType=text)
    world.vendor("CreateIotDataType", IotDataType=text)  # the same again: nothing to do
    (kept,) = world.vendor("DescribeIotDataType", TypeId="Position").Data
    assert json.loads(kept) == POSITION
    assert json.loads(world.vendor("DescribeIotDataType").Data[0])["id"] == "Position"
    # A model names it; the stored model holds the struct itself.
    pid = world.product_id
    model = {
        **DEMO_MODEL,
        "ProWritable": {**DEMO_MODEL["ProWritable"], "ptz": {"type": "Position"}},
    }
    world.vendor("CreateIotModel", ProductId=pid, IotModel=json.dumps(model))
    draft = json.loads(world.vendor("DescribeIotModel", ProductId=pid, Revision=-1).Data)
    assert draft["ProWritable"]["ptz"] == {
        "type": "struct",
        "fields": {
            "pan": {"type": "int32"},
            "label": {"type": "string16"},
            "zoom": {"type": "struct", "fields": {"level": {"type": "float32"}}},
        },
    }
    other = client(cloud, cloud.new_key())
    before = snapshot(cloud.db)
    changed = {**POSITION, "name": "another"}
    refused("ResourceInUse", world.vendor, "CreateIotDataType", IotDataType=json.dumps(changed))
    for bad in (
        "{nope",
        "[]",
        json.dumps({**POSITION, "id": "1x"}),
        json.dumps({**POSITION, "type": []}),
        json.dumps({**POSITION, "type": [{"id": "a", "type": "int128"}]}),
        json.dumps(
            {**POSITION, "type": [{"id": "a", "type": "int32"}, {"id": "a", "type": "bool"}]}
        ),
    ):
        refused("InvalidParameterValue", world.vendor, "CreateIotDataType", IotDataType=bad)
    unknown = {**DEMO_MODEL, "ProWritable": {"x": {"type": "Nowhere"}}}
    refused(
        "InvalidParameterValue",
        world.vendor,
        "CreateIotModel",
        ProductId=pid,
        IotModel=json.dumps(unknown),
    )
    # Another vendor sees none of it.
    assert call(other, "DescribeIotDataType").Data == []
    refused("ResourceNotFound", call, other, "DeleteIotDataType", TypeId="Position")
    assert snapshot(cloud.db) == before
    # Deleting the type leaves the model as it was stored.
    world.vendor("DeleteIotDataType", TypeId="Position")
    refused("ResourceNotFound", world.vendor, "DescribeIotDataType", TypeId="Position")
    assert json.loads(world.vendor("DescribeIotModel", ProductId=pid, Revision=-1).Data) == draft


async def test_generated_device_code_runs_the_model(world: World, tmp_path: Path) -> None:
    """CreateGencode's zip holds a module that, as generated, logs the device in and
    takes the vendor's writes and actions."""
    zipped = (await world.avendor("CreateGencode", ProductId=world.product_id)).ZipCode
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(zipped))) as z:
        names = set(z.namelist())
        z.extractall(tmp_path)
    module_name = f"device_{world.product_id}"
    assert names == {f"{module_name}.py", "model.json", "README.txt"}
    spec = importlib.util.spec_from_file_location(module_name, tmp_path / f"{module_name}.py")
    assert spec is not None and spec.loader is not None
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    tid = world.device.tid
    async with device_client(world.cloud.url, world.device, generated.install):
        await world.avendor(
            "ModifyDeviceProperty",
            Tid=tid,
            Branch="ProWritable.nightMode.setVal",
            Value="2",
            IsNum=True,
        )

        async def applied() -> None:
            state = await world.avendor(
                "DescribeDeviceModel", Tid=tid, Branch="ProWritable.nightMode"
            )
            assert json.loads(state.Data.IotModel)["stVal"] == 2

        await eventually(applied)
        answer = await world.avendor(
            "ModifyDeviceAction", Tid=tid, Branch="Action.cameraOn", Value="1", IsNum=True
        )
        assert json.loads(answer.Data) == 1
    await world.arefused(
        "ResourceNotFound", "CreateGencode", ProductId=world.product_id, Revision=7
    )
    await world.arefused("ResourceNotFound", "CreateGencode", ProductId="nope")


async def test_tracing_records_a_traced_device_and_nothing_of_another(world: World) -> None:
    traced, plain = world.devices[0], world.devices[1]
    await world.avendor("CreateTraceIds", Tids=[traced.tid])
    assert (await world.avendor("DescribeTraceIds")).Data == traced.tid
    status = (await world.avendor("DescribeTraceStatus", Tids=[traced.tid, plain.tid])).Data
    assert [(s.Tid, s.IsExist) for s in status] == [(traced.tid, True), (plain.tid, False)]

    def install(dc: DeviceClient) -> None:
        dc.run_log.interval = 0.05
        dc.on_data(lambda payload, _topic: b"pong:" + payload)

    async with (
        device_client(world.cloud.url, traced, install) as a,
        device_client(world.cloud.url, plain, install) as b,
    ):
        assert a.run_log.active and not b.run_log.active  # told at login
        for dc in (a, b):
            await dc.report("ProReadonly.temperature", 21.5)
            await world.avendor(
                "ModifyDeviceProperty",
                Tid=dc.tid,
                Branch="ProWritable.nightMode.setVal",
                Value="2",
                IsNum=True,
            )
            await world.avendor(
                "SendOnlineMsg", Tid=dc.tid, WaitResp=2, MsgTopic="t", MsgContent="hi"
            )
            dc.run_log.write(f"lens heater on for {dc.tid}")

        async def run_log_uploaded() -> None:
            text = (await world.avendor("DescribeRunLog", Tid=traced.tid)).Data
            assert f"lens heater on for {traced.tid}" in text

        await eventually(run_log_uploaded)
        assert (await world.avendor("DescribeRunLog", Tid=plain.tid)).Data == ""

        async def all_recorded() -> None:
            logs = await world.avendor("DescribeLogs", Tid=traced.tid, Limit=100)
            kinds = {(d.LogType, d.DataObject) for d in logs.Data}
            assert {
                (1, "ProReadonly._online"),
                (5, "ProReadonly.temperature"),
                (3, "ProWritable.nightMode"),
                (7, "down:data"),
            } <= kinds

        await eventually(all_recorded)
        temperature = await world.avendor(
            "DescribeLogs", Tid=traced.tid, Limit=10, LogType=5, DataObject="temperature"
        )
        (row,) = temperature.Data
        assert temperature.TotalCount == 1 and json.loads(row.NewValue)["stVal"] == 21.5
        night = (
            await world.avendor("DescribeLogs", Tid=traced.tid, Limit=10, DataObject="nightMode")
        ).Data
        assert json.loads(night[0].NewValue)["stVal"] == 2
        assert json.loads(night[-1].OldValue)["stVal"] == 0  # the write's change, then the report
        later = await world.avendor(
            "DescribeLogs", Tid=traced.tid, Limit=10, StartTime=row.Occurtime + 3600
        )
        assert later.TotalCount == 0
        nothing = await world.avendor("DescribeLogs", Tid=plain.tid, Limit=100)
        assert (nothing.TotalCount, nothing.Data) == (0, [])

        # Off the list: the device is told, and nothing more is recorded.
        await world.avendor("DeleteTraceIds", Tids=[traced.tid])

        async def told() -> None:
            assert not a.run_log.active

        await eventually(told)
        before = (await world.avendor("DescribeLogs", Tid=traced.tid, Limit=1)).TotalCount
        await a.report("ProReadonly.temperature", 30.0)
        after = (await world.avendor("DescribeLogs", Tid=traced.tid, Limit=1)).TotalCount
        assert after == before
    assert (await world.avendor("DescribeTraceIds")).Data == ""

    await world.arefused("ResourceNotFound", "CreateTraceIds", Tids=[plain.tid, "nope"])
    await world.arefused("ResourceNotFound", "DescribeLogs", Tid="nope")
    await world.arefused("InvalidParameterValue", "DescribeLogs", Tid=plain.tid, LogType=8)
    await world.arefused("InvalidParameterValue", "DescribeLogs", Tid=plain.tid, Limit=101)
    await world.arefused("ResourceNotFound", "DescribeRunLog", Tid="nope")
    assert (await world.avendor("DescribeTraceIds")).Data == ""
