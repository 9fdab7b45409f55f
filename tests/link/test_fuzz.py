"""Property-based fuzzing of link frames, app and device side, on both backends.

For any frame a logged-in peer sends: a request gets a reply with a code, never an
internal error (20140); the session stays up; a refused request stores nothing; and the
cloud logs no traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from iotvideo.cloud.link.app_session import AppSession
from iotvideo.cloud.link.device_session import DeviceSession
from iotvideo.protocol import link
from iotvideo.protocol.certificate import DeviceCertificate
from iotvideo.protocol.errors import ErrorCode
from tests.link.world import World, make_world
from tests.support import Cloud, snapshot

APP_OPS = sorted(AppSession._handlers(AppSession.__new__(AppSession)))
DEVICE_OPS = sorted(DeviceSession._handlers(DeviceSession.__new__(DeviceSession)))


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> World:
    return make_world(cloud, devices=2)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
_paths = st.sampled_from(
    [
        "",
        "ProReadonly",
        "ProReadonly.temperature",
        "ProWritable.nightMode.setVal",
        "ProWritable.led",
        "ProUser.note",
        "ProUser.note.val",
        "Action.cameraOn",
        "Action._otaVersion",
        "Event.motion",
        "ProConst._versionInfo",
    ]
) | st.text(max_size=40)


def _fields(world: World) -> dict[str, st.SearchStrategy[Any]]:
    """Plausible values by field name, so that accepted requests are fuzzed too."""
    tids = st.sampled_from([d.tid for d in world.devices] + ["NOSUCHTID"])
    return {
        "tid": tids,
        "path": _paths,
        "json": st.sampled_from(["1", "2", "true", '{"ctlVal": 1}', '"x"', "[1]"])
        | _json.map(json.dumps),
        "value": _json,
        "data": st.binary(max_size=20).map(link.encode_data) | st.text(max_size=10),
        "access_token": st.sampled_from([world.owner.token, "bind_x"]),
        "chn": st.integers(-2, 3),
        "online": st.integers(0, 3),
        "timeout": st.floats(0.05, 0.3),
        "sdp": st.text(max_size=40),
        "kind": st.sampled_from(["monitor", "live", "transmission", "x"]),
        "url": st.text(max_size=20),
        "bind_token": st.text(max_size=50),
        "current_version": st.sampled_from(["1.0.0", "x"]),
    }


@st.composite
def frames(draw: st.DrawFn, ops: list[str], world: World) -> str:
    """A request with plausible fields and one spoiled, or junk."""
    kind = draw(st.sampled_from(["request", "request", "request", "junk", "push"]))
    if kind == "junk":
        return draw(st.text(max_size=60) | _json.map(json.dumps))
    fields = _fields(world)
    op = draw(st.sampled_from(ops) | st.text(max_size=10))
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), max_size=4, unique=True))
    data = {name: draw(fields[name] | _json) for name in chosen}
    if kind == "push":
        return json.dumps({"op": op, "data": data})
    return json.dumps({"id": draw(st.integers(1, 2**40)), "op": op, "data": data})


@contextmanager
def session(world: World, path: str) -> Iterator[ClientConnection]:
    url = world.cloud.url.replace("http", "ws") + path
    with connect(url, max_size=None) as ws:
        hello = json.loads(ws.recv(timeout=10))
        if path == "/link/app":
            login = {"access_id": world.owner.access_id, "access_token": world.owner.token}
        else:
            cert = DeviceCertificate.parse(world.devices[1].certificate)
            ts = int(time.time())
            nonce = hello["data"]["nonce"]
            login = {
                "tid": cert.tid,
                "ts": ts,
                "sig": link.sign_login(cert.private_key, cert.tid, nonce, ts),
            }
        ws.send(json.dumps({"id": 1, "op": "login", "data": login}))
        assert _reply(ws, 1)["code"] == 0
        yield ws


def _reply(ws: ClientConnection, frame_id: int) -> dict[str, Any]:
    while True:
        frame = json.loads(ws.recv(timeout=20))
        if frame.get("id") == frame_id and "code" in frame:
            return dict(frame)


def _is_request(text: str) -> int | None:
    """The id of a well-formed request (which must be answered), else None."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frame, dict) or "code" in frame or not isinstance(frame.get("op"), str):
        return None
    frame_id = frame.get("id")
    ok = isinstance(frame_id, int) and not isinstance(frame_id, bool) and 0 < frame_id < 2**53
    return frame_id if ok and isinstance(frame.get("data", {}), dict) else None


def _answers(ws: ClientConnection, ping_id: int, request_id: int | None) -> list[int]:
    """Codes of what answers the fuzzed frame: its reply (if it was a request) and any
    error push, read until the ping sent after it is answered (alive) and the reply came."""
    codes: list[int] = []
    pinged, replied = False, request_id is None
    while not (pinged and replied):
        frame = json.loads(ws.recv(timeout=20))
        if frame.get("id") == ping_id and "code" in frame:
            assert frame["code"] == 0, "the session is still up"
            pinged = True
        elif "code" in frame:
            codes.append(frame["code"])
            replied = replied or frame.get("id") == request_id
        elif frame.get("op") == "error":
            codes.append(frame["data"]["code"])
    return codes


def _fuzz(world: World, path: str, ops: list[str], data: st.DataObject) -> None:
    with session(world, path) as ws:
        for n in range(data.draw(st.integers(1, 4))):
            text = data.draw(frames(ops, world))
            request_id = _is_request(text)
            ping_id = 2**53 - 1 - n
            before = snapshot(world.cloud.db)
            ws.send(text)
            ws.send(json.dumps({"id": ping_id, "op": "ping", "data": {}}))
            codes = _answers(ws, ping_id, request_id)
            assert ErrorCode.IVTermErr_msg_user_cmd_internal_error not in codes, (text, codes)
            if codes and 0 not in codes:
                assert snapshot(world.cloud.db) == before, (text, codes)


# Each example is a session of up to four frames: half the profile's examples (75 in CI,
# 750 with HYPOTHESIS_PROFILE=deep) send about as many frames as the vendor fuzzing.
_settings = settings(
    max_examples=max(1, settings().max_examples // 2),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_settings
@given(data=st.data())
def test_app_frames(world: World, data: st.DataObject) -> None:
    _fuzz(world, "/link/app", APP_OPS, data)


@_settings
@given(data=st.data())
def test_device_frames(world: World, data: st.DataObject) -> None:
    _fuzz(world, "/link/device", DEVICE_OPS, data)


def test_no_traceback_in_the_cloud_log(world: World) -> None:
    """Runs after the fuzzing above, on the same cloud (module order)."""
    assert not any("Traceback" in line for line in world.cloud.log), "".join(world.cloud.log)
