"""Property-based fuzzing of the VAS endpoints (app queries and JSON, signed device
uploads), on both backends: never a 5xx, always the JSON envelope with a code, a refused
request stores nothing, and the cloud logs no traceback."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotvideo.cloud.vas import router as vas_router
from iotvideo.protocol import link
from iotvideo.protocol.certificate import DeviceCertificate
from iotvideo.protocol.vas import upload_message
from tests.link.world import World, make_world
from tests.support import Cloud, snapshot

APP_GETS = sorted(
    route.path
    for route in vas_router.routes
    if "GET" in getattr(route, "methods", ()) and "{" not in route.path
)
UPLOADS = ["/vas/device/segment", "/vas/device/event"]
NAMES = [
    "deviceId", "sourceId", "startTime", "endTime", "timezone", "pageSize", "typeMasks",
    "validCloudStorage", "chn", "start", "end", "alarmType", "firstAlarmType", "id",
]  # fmt: skip


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> World:
    made = make_world(cloud, devices=1)
    made.vendor("CreateStorageService", PkgId="yc1m3d", Tid=made.device.tid)
    return made


#: One "now" for the whole run: strategies must not change between examples.
NOW = int(time.time())


def _values(world: World) -> st.SearchStrategy[str]:
    now = NOW
    return st.one_of(
        st.sampled_from([world.device.tid, "NOSUCHTID", "", "0"]),
        st.integers(-(2**70), 2**70).map(str),
        st.integers(now - 86_400, now).map(str),
        st.integers((now - 86_400) * 1000, now * 1000).map(str),
        st.sampled_from(["1e400", "nan", "-inf", "1.5", "[]", "true", "0x10", " 7 "]),
        st.text(max_size=20),
    )


@st.composite
def queries(draw: st.DrawFn, world: World) -> list[tuple[str, str]]:
    names = draw(st.lists(st.sampled_from(NAMES) | st.text(max_size=6), max_size=7))
    return [(name, draw(_values(world))) for name in names]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3),
    max_leaves=8,
)

_settings = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _check(world: World, response: httpx.Response, before: Any) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    assert isinstance(body["code"], int)
    if body["code"] != 0:
        assert snapshot(world.cloud.db) == before, response.text


@_settings
@given(data=st.data())
def test_app_requests(world: World, data: st.DataObject) -> None:
    auth = {"authorization": f"Bearer {data.draw(st.sampled_from([world.owner.token, 'x']))}"}
    before = snapshot(world.cloud.db)
    with httpx.Client(base_url=world.cloud.url, timeout=30) as http:
        if data.draw(st.booleans()):
            path = data.draw(st.sampled_from(APP_GETS))
            response = http.get(f"{path}?{urlencode(data.draw(queries(world)))}", headers=auth)
        else:
            body = data.draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "deviceId": st.sampled_from([world.device.tid, "X"]) | _json,
                        "eventIds": st.lists(st.text(max_size=70), max_size=120) | _json,
                    },
                )
                | _json
            )
            raw = json.dumps(body).encode() if data.draw(st.booleans()) else data.draw(st.binary())
            response = http.post("/vas/events/delete", content=raw, headers=auth)
    _check(world, response, before)


@_settings
@given(data=st.data())
def test_signed_uploads(world: World, data: st.DataObject) -> None:
    cert = DeviceCertificate.parse(world.device.certificate)
    path = data.draw(st.sampled_from(UPLOADS))
    target = f"{path}?{urlencode(data.draw(queries(world)))}"
    body = data.draw(st.binary(max_size=300) | st.just(b""))
    now = int(time.time())
    signature = link.sign(cert.private_key, upload_message(cert.tid, "POST", target, body, now))
    headers = {"x-iv-tid": cert.tid, "x-iv-time": str(now), "x-iv-signature": signature}
    before = snapshot(world.cloud.db)
    with httpx.Client(base_url=world.cloud.url, timeout=30) as http:
        response = http.post(target, content=body, headers=headers)
    _check(world, response, before)


def test_no_traceback_in_the_cloud_log(world: World) -> None:
    """Runs after the fuzzing above, on the same cloud (module order)."""
    assert not any("Traceback" in line for line in world.cloud.log), "".join(world.cloud.log)
