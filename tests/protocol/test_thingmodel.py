"""Thing-model definitions, paths, validation and state changes, as plain values."""

from __future__ import annotations

import json

import pytest

from iotvideo.protocol.errors import IVError
from iotvideo.protocol.thingmodel import ThingModel, apply, parse_path, read

MODEL = {
    "ProReadonly": {"temperature": {"type": "float32", "min": -40, "max": 125}},
    "ProWritable": {
        "nightMode": {"type": "uint32", "enum": [0, 1, 2], "default": 1},
        "name": "string8",
        "zone": {"type": "struct", "fields": {"x": "int32", "y": "int32"}},
    },
    "Action": {"cameraOn": {"type": "uint32", "enum": [0, 1]}},
}


@pytest.fixture
def model() -> ThingModel:
    return ThingModel.parse(json.dumps(MODEL))


def code(fn: object, *args: object) -> int:
    with pytest.raises(IVError) as info:
        fn(*args)  # type: ignore[operator]
    return int(info.value.code)


def test_paths() -> None:
    assert parse_path("") == ()
    assert parse_path("ProUser._buildIn.val.nickName") == ("ProUser", "_buildIn", "val", "nickName")
    for bad in (
        "Nope.x",
        "ProWritable..x",
        "ProWritable.x-y",
        ".".join(["ProUser"] * 9),
        "P" * 300,
    ):
        assert code(parse_path, bad) == 20101


def test_initial_state_has_built_ins_and_defaults(model: ThingModel) -> None:
    state = model.initial_state(100)
    assert state["ProWritable"]["nightMode"] == {"setVal": 1, "stVal": 1, "t": 100}
    assert state["ProWritable"]["_logLevel"]["setVal"] == 3
    assert state["ProReadonly"]["_online"] == {"stVal": 0, "t": 100}
    assert state["ProUser"]["_buildIn"]["val"] == {"almEvtPushEna": 0, "nickName": ""}
    assert read(state, "ProWritable.nightMode.setVal") == 1
    assert code(read, state, "ProWritable.nope") == 20101


def test_both_write_forms(model: ThingModel) -> None:
    a = model.app_write("ProWritable.nightMode", '{"setVal": 2}')
    b = model.app_write("ProWritable.nightMode.setVal", "2")
    assert a == b and a.attrs == {"setVal": 2}


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("ProWritable.nightMode.setVal", "3", 20143),
        ("ProWritable.nightMode.setVal", "1.5", 20143),
        ("ProWritable.nightMode.setVal", "true", 20143),
        ("ProWritable.name.setVal", '"123456789"', 20143),
        ("ProWritable.zone.setVal", '{"z": 1}', 20143),
        ("ProWritable.nightMode", "2", 20143),
        ("ProWritable.nightMode", "{bad", 20102),
        ("ProReadonly.temperature.stVal", "1", 20101),
        ("ProWritable.nightMode.stVal", "1", 20101),
        ("ProWritable.missing.setVal", "1", 20101),
    ],
)
def test_refused_writes(model: ThingModel, path: str, value: str, expected: int) -> None:
    assert code(model.app_write, path, value) == expected


def test_struct_writes_merge(model: ThingModel) -> None:
    state = model.initial_state(1)
    apply(state, model.app_write("ProWritable.zone.setVal", '{"x": 1, "y": 2}'), 2)
    apply(state, model.app_write("ProWritable.zone.setVal.y", "5"), 3)
    assert state["ProWritable"]["zone"]["setVal"] == {"x": 1, "y": 5}
    apply(state, model.app_write("ProUser._buildIn.val.nickName", '"Porch"'), 4)
    assert state["ProUser"]["_buildIn"] == {
        "val": {"almEvtPushEna": 0, "nickName": "Porch"},
        "t": 4,
    }


def test_user_properties(model: ThingModel) -> None:
    assert model.user_add("ProUser.label", '{"k": "v"}').attrs == {"val": {"k": "v"}}
    assert code(model.user_add, "ProUser._label", "1") == 8605
    assert code(model.user_delete, "ProUser._buildIn") == 8605
    assert code(model.user_add, "ProWritable.x", "1") == 20101
    custom = model.app_write("ProUser.label.val", '{"k": "w"}')
    assert custom.attrs == {"val": {"k": "w"}} and not custom.merge


def test_device_reports_and_actions(model: ThingModel) -> None:
    assert model.device_report("ProReadonly.temperature", 21.5).attrs == {"stVal": 21.5}
    assert model.device_report("ProReadonly.temperature.stVal", 21).attrs == {"stVal": 21}
    assert code(model.device_report, "ProReadonly.temperature", 500) == 20143
    assert code(model.device_report, "ProUser.x", 1) == 20101
    assert model.app_action("Action.cameraOn", '{"ctlVal": 1}').attrs == {"ctlVal": 1}
    assert code(model.app_action, "Action.cameraOn.ctlVal", "7") == 20143
    assert model.device_event("Event.anything", {"a": 1}).attrs == {"stVal": {"a": 1}}


@pytest.mark.parametrize(
    "source",
    [
        "not json",
        "[]",
        '{"ProUser": {}}',
        '{"ProWritable": {"_x": "int32"}}',
        '{"ProWritable": {"x": {"type": "int64"}}}',
        '{"ProWritable": {"x": {"type": "int32", "min": "low"}}}',
        '{"ProWritable": {"x": {"type": "int32", "enum": []}}}',
        '{"ProWritable": {"x": {"type": "uint32", "default": -1}}}',
        '{"ProWritable": {"x": {"type": "string", "max": 0}}}',
        '{"ProWritable": {"x": '
        + '{"type": "struct", "fields": {"a": ' * 12
        + '"int32"'
        + "}}" * 12
        + "}}",
    ],
)
def test_bad_models(source: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the messages vary by case
        ThingModel.parse(source)


def test_upgrading_a_state_to_a_newer_model(model: ThingModel) -> None:
    state = ThingModel.builtins_only().initial_state(1)
    assert "nightMode" not in state["ProWritable"]
    assert model.upgrade_state(state, 5)
    assert state["ProWritable"]["nightMode"]["t"] == 5
    assert not model.upgrade_state(state, 6)
