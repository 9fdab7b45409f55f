"""Who may do what: every app op of the link, every VAS endpoint and every vendor action,
against every kind of credential. Each cell's expected answer is asserted, and a refused
request changes nothing stored.

The op, route and action lists are read from the code: a new op, route or action fails
this test until its row is added here.

Credentials: the device's owner and a guest (bindings), a user holding a device token
(CreateDevToken, subscribed with it), an anonymous visitor (CreateAnonymousAccessToken),
a stranger (same vendor, no relation), another vendor's user, and expired and revoked
tokens. The device stays offline, so an allowed request that needs it answers 8000:
allowed and refused cells differ without a camera in the loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from iotvideo.app import IoTVideo
from iotvideo.cloud.link.app_session import AppSession
from iotvideo.cloud.vas import router as vas_router
from iotvideo.cloud.vendor import VendorApi, register_all
from iotvideo.protocol.errors import IVError
from tests.inproc import Clock, inproc_cloud
from tests.link.world import User, World, make_world
from tests.support import CloudAddress, asnapshot, error_code, signed_post

ROLES = ("owner", "guest", "device_token", "anonymous", "stranger", "other_vendor")
OK = 0

# App ops over the link: the expected code per role (0: answered). The device is offline.
LINK: dict[str, dict[str, int]] = {
    #                  owner  guest  devtok anon  stranger other_vendor
    "prop.read": dict(zip(ROLES, (OK, OK, OK, OK, 8003, 8002), strict=True)),
    "model.get": dict(zip(ROLES, (OK, OK, OK, OK, 8003, 8002), strict=True)),
    "prop.write": dict(zip(ROLES, (OK, 8003, 8003, 8003, 8003, 8002), strict=True)),
    "prop.add": dict(zip(ROLES, (OK, 8003, 8003, 8003, 8003, 8002), strict=True)),
    "prop.delete": dict(zip(ROLES, (20101, 8003, 8003, 8003, 8003, 8002), strict=True)),
    "action": dict(zip(ROLES, (8000, 8000, 8000, 8000, 8003, 8002), strict=True)),
    "action._builtin": dict(zip(ROLES, (8000, 8003, 8003, 8003, 8003, 8002), strict=True)),
    "data": dict(zip(ROLES, (8000, 8000, 8000, 8000, 8003, 8002), strict=True)),
    "media.ice": dict(zip(ROLES, (OK, OK, OK, OK, 8003, 8002), strict=True)),
    "media.offer": dict(zip(ROLES, (8000, 8000, 8000, 8000, 8003, 8002), strict=True)),
    "media.candidate": dict(zip(ROLES, (8000, 8000, 8000, 8000, 8003, 8002), strict=True)),
    "media.close": dict(zip(ROLES, (8000, 8000, 8000, 8000, 8003, 8002), strict=True)),
    "media.offer.playback": dict(zip(ROLES, (8000, 8000, 8000, 8000, 8003, 8002), strict=True)),
    "media.offer.download": dict(zip(ROLES, (8000, 8000, 8000, 8000, 8003, 8002), strict=True)),
    # The memory card's lists are asked of the device (offline here): whoever may watch.
    "card.days": dict(zip(ROLES, (8000, 8000, 8000, 8000, 8003, 8002), strict=True)),
    "card.list": dict(zip(ROLES, (8000, 8000, 8000, 8000, 8003, 8002), strict=True)),
    "ota.query": dict(zip(ROLES, (OK, OK, OK, OK, 8003, 8002), strict=True)),
    "device.identity": dict(zip(ROLES, (OK, OK, OK, OK, OK, 8002), strict=True)),
    "bindtoken.create": dict(zip(ROLES, (OK, OK, OK, 21100, OK, OK), strict=True)),
    "ping": dict.fromkeys(ROLES, OK),
    # Missed events of the devices the session may see (none for a stranger): never refused.
    "event.since": dict.fromkeys(ROLES, OK),
    # The vendor's webhook: no webhook is set, so every user is told so.
    "server.data": dict.fromkeys(ROLES, 21005),
    # subscribe/unsubscribe are how a token holder gains access: their own rows below.
}
#: Ops covered by their own tests in this module.
LINK_ELSEWHERE = {"subscribe", "unsubscribe"}


def link_request(op: str, tid: str) -> tuple[str, dict[str, Any]]:
    data = {
        "prop.read": {"tid": tid, "path": ""},
        "model.get": {"tid": tid},
        "prop.write": {"tid": tid, "path": "ProWritable.led.setVal", "json": "false"},
        "prop.add": {"tid": tid, "path": "ProUser.matrix", "json": "1"},
        "prop.delete": {"tid": tid, "path": "ProUser.nothing"},
        "action": {"tid": tid, "path": "Action.cameraOn", "json": '{"ctlVal": 1}'},
        "action._builtin": {"tid": tid, "path": "Action._otaVersion", "json": '{"ctlVal": {}}'},
        "data": {"tid": tid, "data": base64.b64encode(b"x").decode()},
        "media.ice": {"tid": tid},
        "media.offer": {"tid": tid, "sdp": "v=0\r\n", "kind": "monitor"},
        "media.candidate": {"tid": tid, "session": 1, "candidate": "", "mid": "0"},
        "media.close": {"tid": tid, "session": 1},
        "media.offer.playback": {"tid": tid, "sdp": "v=0\r\n", "kind": "playback", "at": 1},
        "media.offer.download": {"tid": tid, "sdp": "v=0\r\n", "kind": "download"},
        "card.days": {"tid": tid, "month": "2026-12", "tz": 0},
        "card.list": {"tid": tid, "start": 0, "end": 1 << 41},
        "ota.query": {"tid": tid},
        "device.identity": {"tid": tid},
        "bindtoken.create": {},
        "ping": {},
        "event.since": {"after": 0},
        "server.data": {"url": "/x", "data": ""},
    }[op]
    if op.startswith("media.offer."):
        return "media.offer", data
    return op.split("._")[0] if op.startswith("action.") else op, data


@dataclass
class Party:
    """One credential: what logs in on the link, and the bearer token for HTTP."""

    user: User
    bearer: str
    subscribe_with: str = ""  # a device token to subscribe with after login


@dataclass
class Matrix:
    cloud: CloudAddress
    a: World
    b: World
    parties: dict[str, Party]
    expired: Party
    revoked: Party
    clock: Clock


@pytest.fixture
async def matrix(tmp_path: Path) -> AsyncIterator[Matrix]:
    clock = Clock()
    async with inproc_cloud(tmp_path, clock) as cloud:
        a: World = await asyncio.to_thread(make_world, cloud, devices=1)
        b: World = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = a.device.tid
        holder = await asyncio.to_thread(a.new_user, "holder")
        made = await a.avendor(
            "CreateDevToken", AccessId=holder.access_id, Tids=[tid], TtlMinutes=60
        )
        dev_token = made.Data[0].AccessToken
        anon = await a.avendor("CreateAnonymousAccessToken", TtlMinutes=60, Tid=tid)
        anonymous = User(anon.AccessId, anon.AccessToken)
        expiring = await a.avendor(
            "CreateUsrToken", AccessId=a.owner.access_id, UniqueId="old-phone", TtlMinutes=1
        )
        replaced = await a.avendor(
            "CreateUsrToken", AccessId=a.owner.access_id, UniqueId="lost-phone", TtlMinutes=60
        )
        await a.avendor(
            "CreateUsrToken",
            AccessId=a.owner.access_id,
            UniqueId="lost-phone",
            TtlMinutes=60,
            OldAccessToken=replaced.AccessToken,
        )
        parties = {
            "owner": Party(a.owner, a.owner.token),
            "guest": Party(a.guest, a.guest.token),
            "device_token": Party(holder, dev_token, subscribe_with=dev_token),
            "anonymous": Party(anonymous, anonymous.token),
            "stranger": Party(a.stranger, a.stranger.token),
            "other_vendor": Party(b.owner, b.owner.token),
        }
        clock.offset += 120  # the one-minute token is now expired; signatures still valid
        yield Matrix(
            cloud,
            a,
            b,
            parties,
            Party(User(a.owner.access_id, expiring.AccessToken), expiring.AccessToken),
            Party(User(a.owner.access_id, replaced.AccessToken), replaced.AccessToken),
            clock,
        )


@asynccontextmanager
async def logged_in(cloud: CloudAddress, party: Party, tid: str) -> AsyncIterator[IoTVideo]:
    sdk = IoTVideo()
    sdk.setup(cloud.url)
    await sdk.register(party.user.access_id, party.user.token, timeout=20)
    try:
        if party.subscribe_with:
            await sdk.net_config.subscribe_device(party.subscribe_with, tid)
        yield sdk
    finally:
        await sdk.unregister()


async def code_of(sdk: IoTVideo, op: str, data: dict[str, Any]) -> int:
    try:
        await sdk.request(op, data)
    except IVError as exc:
        return int(exc.code)
    return OK


def test_every_link_op_has_a_row() -> None:
    ops = set(AppSession._handlers(AppSession.__new__(AppSession)))
    rows = {link_request(op, "t")[0] for op in LINK}
    assert ops == rows | LINK_ELSEWHERE


async def test_link_ops(matrix: Matrix) -> None:
    tid = matrix.a.device.tid
    seen: dict[str, dict[str, int]] = {op: {} for op in LINK}
    for role, party in matrix.parties.items():
        async with logged_in(matrix.cloud, party, tid) as sdk:
            for op in LINK:
                expected = LINK[op][role]
                before = await asnapshot(matrix.cloud.db) if expected not in (OK,) else None
                wire_op, data = link_request(op, tid)
                seen[op][role] = await code_of(sdk, wire_op, data)
                if before is not None and seen[op][role] == expected:
                    assert await asnapshot(matrix.cloud.db) == before, (op, role)
    if os.environ.get("IOTVIDEO_MATRIX_SHOW"):
        for op, row in seen.items():
            print(op, [row[r] for r in ROLES])
    assert seen == LINK


async def test_expired_and_revoked_tokens_cannot_log_in(matrix: Matrix) -> None:
    for party in (matrix.expired, matrix.revoked):
        with pytest.raises(IVError) as refused:
            async with logged_in(matrix.cloud, party, matrix.a.device.tid):
                pass
        assert refused.value.code == 20010


async def test_subscribing_needs_a_token_for_that_device(matrix: Matrix) -> None:
    a, tid = matrix.a, matrix.a.device.tid
    holder = matrix.parties["device_token"]
    cells = {
        # who subscribes, with which token: the expected code
        ("stranger", holder.subscribe_with): 8003,  # another user's device token
        ("device_token", holder.subscribe_with): OK,
        ("device_token", matrix.parties["owner"].bearer): 8003,  # not a device token
        ("other_vendor", holder.subscribe_with): 8003,  # a token of another user
    }
    for (role, token), expected in cells.items():
        party = matrix.parties[role]
        async with logged_in(matrix.cloud, Party(party.user, party.bearer), tid) as sdk:
            got = await code_of(sdk, "subscribe", {"tid": tid, "access_token": token})
            assert got == expected, (role, token[:4], got)
            if got == OK:
                assert await code_of(sdk, "unsubscribe", {"tid": tid}) == OK
                assert await code_of(sdk, "prop.read", {"tid": tid, "path": ""}) == 8003
    assert a.device.tid == tid


# VAS over HTTP: (status, code) per role; device-side and signed-URL routes refuse every
# app credential.
APP_ROUTES = {
    #                    owner       guest       devtok      anon        stranger    other
    ("GET", "/vas/service"): [(200, 0)] * 4 + [(403, 8003), (404, 8002)],
    ("GET", "/vas/dates"): [(200, 0)] * 4 + [(403, 8003), (404, 8002)],
    ("GET", "/vas/playlist"): [(200, 0)] * 4 + [(403, 8003), (404, 8002)],
    ("GET", "/vas/address"): [(200, 0)] * 4 + [(403, 8003), (404, 8002)],
    ("GET", "/vas/events"): [(200, 0)] * 4 + [(403, 8003), (404, 8002)],
    ("POST", "/vas/events/delete"): [(200, 0)] + [(403, 8003)] * 4 + [(404, 8002)],
}
DEVICE_ROUTES = {("POST", "/vas/device/segment"), ("POST", "/vas/device/event")}
SIGNED_ROUTES = {
    ("GET", "/vas/hls/{exp}/{sig}/{tid}/{chn}/{window}.m3u8"),
    ("GET", "/vas/hls/{exp}/{sig}/{tid}/{chn}/{window}.mp4"),
    ("GET", "/vas/hls/{exp}/{sig}/{tid}/{chn}/{window}/{segment_id}.ts"),
    ("GET", "/vas/img/{tid}/{alarm_id}.jpg"),
}


def vas_request(method: str, path: str, tid: str) -> tuple[str, dict[str, Any]]:
    now = int(time.time())
    if method == "POST" and path == "/vas/events/delete":
        return path, {"json": {"deviceId": tid, "eventIds": ["none"]}}
    if path.startswith("/vas/device/"):
        return f"{path}?chn=0&start=1&end=2&alarmType=1", {"content": b"x"}
    if path.startswith(("/vas/hls/", "/vas/img/")):
        filled = path.format(
            exp=now + 60, sig="0" * 64, tid=tid, chn=0, window="1-2", segment_id=1, alarm_id="x"
        )
        return filled, {}
    query = f"deviceId={tid}&startTime={now - 60}&endTime={now}&timezone=0"
    return f"{path}?{query}", {}


def test_every_vas_route_has_a_row() -> None:
    routes = {
        (method, route.path)
        for route in vas_router.routes
        for method in getattr(route, "methods", ())
    }
    assert routes == set(APP_ROUTES) | DEVICE_ROUTES | SIGNED_ROUTES


async def test_vas_routes(matrix: Matrix) -> None:
    tid = matrix.a.device.tid
    parties = {**matrix.parties, "expired": matrix.expired, "revoked": matrix.revoked}
    async with httpx.AsyncClient(base_url=matrix.cloud.url, timeout=30) as http:
        for (method, path), row in APP_ROUTES.items():
            expected = dict(zip(ROLES, row, strict=True)) | {
                "expired": (401, 20010),
                "revoked": (401, 20010),
            }
            for role, party in parties.items():
                url, extra = vas_request(method, path, tid)
                before = await asnapshot(matrix.cloud.db)
                headers = {"authorization": f"Bearer {party.bearer}"}
                response = await http.request(method, url, headers=headers, **extra)
                got = (response.status_code, response.json()["code"])
                assert got == expected[role], (method, path, role, response.text)
                if got[0] != 200:
                    assert await asnapshot(matrix.cloud.db) == before
        for method, path in DEVICE_ROUTES | SIGNED_ROUTES:
            for role, party in parties.items():
                url, extra = vas_request(method, path, tid)
                headers = {"authorization": f"Bearer {party.bearer}"}
                response = await http.request(method, url, headers=headers, **extra)
                expected_status = 401 if path.startswith("/vas/device/") else 403
                assert response.status_code == expected_status, (path, role, response.text)


#: Vendor B's requests naming vendor A's resources: the error code each gets (None: the
#: action succeeds, on B's own data only).
NOT_FOUND = "ResourceNotFound"
VENDOR_B: dict[str, str | None] = {
    "CreateProduct": None,
    "DescribeProducts": None,
    "CreateAppUsr": None,
    "DescribeRegistrationStatus": None,
    "DescribeOtaVersions": None,  # B's releases of that product: none
    "DescribeOsList": None,
    "DescribeAccountBalance": None,  # the same for every vendor
    "DescribeRechargeRecords": None,
    "CreateIotDataType": None,  # B's own type
    "DescribeIotDataType": None,  # B's own types: none
    "DescribeTraceIds": None,  # B's own list: empty
} | dict.fromkeys(
    [
        "DescribeProduct",
        "ModifyProduct",
        "DeleteProduct",
        "CreateDevices",
        "DescribeDevice",
        "DescribeDevices",
        "DeleteDevice",
        "DisableDevice",
        "RunDevice",
        "ModifyDevice",
        "DescribeStream",
        "RunDeviceStream",
        "DisableDeviceStream",
        "DeleteAppUsr",
        "CreateUsrToken",
        "CreateDevToken",
        "CreateAnonymousAccessToken",
        "CreateBinding",
        "DeleteBinding",
        "DescribeBindDev",
        "DescribeBindUsr",
        "CreateIotModel",
        "RunIotModel",
        "DescribeIotModel",
        "DescribeIotModels",
        "DescribeDeviceModel",
        "ModifyDeviceProperty",
        "ModifyDeviceAction",
        "DescribeModelDataRet",
        "SendOnlineMsg",
        "CreateStorageService",
        "CreateStorage",
        "DescribeStorageService",
        "DeliverStorageService",
        "RefundStorageService",
        "UploadOtaVersion",
        "RunOtaVersion",
        "RunTestOtaVersion",
        "DisableOtaVersion",
        "ModifyVerContent",
        "DescribePubVersions",
        "DeleteOtaVersion",
        "UpgradeDevice",
        "ClearDeviceActiveCode",
        "DeleteIotDataType",
        "CreateGencode",
        "CreateUploadPath",
        "CreateUploadTest",
        "RenewUploadTest",
        "SetMessageQueue",
        "DescribeMessageQueue",
        "DeleteMessageQueue",
        "CreateTraceIds",
        "DeleteTraceIds",
        "DescribeTraceStatus",
        "DescribeLogs",
        "DescribeRunLog",
    ],
    NOT_FOUND,
)


def vendor_params(m: Matrix, service: Any) -> dict[str, dict[str, Any]]:
    """Parameters naming vendor A's product, device, user, service and release."""
    pid, tid, user = m.a.product_id, m.a.device.tid, m.a.owner.access_id
    model = '{"ProWritable": {"x": {"type": "bool"}}}'
    release = {"ProductId": pid, "OtaVersion": "1.0.9"}
    return {
        "CreateProduct": {"ProductModel": "b", "ProductName": "B", "ProductDescription": "b"},
        "DescribeProduct": {"ProductId": pid},
        "DescribeProducts": {"Limit": 10, "Offset": 0},
        "DeleteProduct": {"ProductId": pid},
        "ModifyProduct": {"ProductId": pid, "ProductName": "taken"},
        "DescribeOsList": {},
        "DescribeAccountBalance": {"AccountType": 1},
        "DescribeRechargeRecords": {"AccountType": 1},
        "CreateDevices": {"ProductId": pid, "Number": 1},
        "DescribeDevice": {"Tid": tid},
        "DescribeDevices": {"ProductId": pid, "ReturnModel": False, "Limit": 10, "Offset": 0},
        "DeleteDevice": {"Tids": [tid]},
        "DisableDevice": {"Tids": [tid]},
        "RunDevice": {"Tids": [tid]},
        "ModifyDevice": {"Tid": tid, "AccessId": user, "Nick": "mine"},
        "DescribeStream": {"Tid": tid, "AccessId": user, "Protocol": "RTSP"},
        "RunDeviceStream": {"Tids": [tid]},
        "DisableDeviceStream": {"Tids": [tid]},
        "CreateAppUsr": {"CunionId": "owner"},
        "DeleteAppUsr": {"AccessId": user},
        "DescribeRegistrationStatus": {"CunionIds": ["holder"]},  # only A has one
        "CreateUsrToken": {"AccessId": user, "UniqueId": "b", "TtlMinutes": 60},
        "CreateDevToken": {"AccessId": user, "Tids": [tid], "TtlMinutes": 60},
        "CreateAnonymousAccessToken": {"TtlMinutes": 60, "Tid": tid},
        "CreateBinding": {"AccessId": user, "Tid": tid, "Role": "owner", "ForceBind": True},
        "DeleteBinding": {"AccessId": user, "Tid": tid, "Role": "owner"},
        "DescribeBindDev": {"AccessId": user},
        "DescribeBindUsr": {"Tid": tid, "AccessId": user},
        "CreateIotModel": {"ProductId": pid, "IotModel": model},
        "RunIotModel": {"ProductId": pid, "IotModel": model},
        "DescribeIotModel": {"ProductId": pid, "Revision": -1},
        "DescribeIotModels": {"ProductId": pid},
        "DescribeDeviceModel": {"Tid": tid},
        "ModifyDeviceProperty": {"Tid": tid, "Branch": "ProWritable.led", "Value": "true"},
        "ModifyDeviceAction": {"Tid": tid, "Branch": "Action.cameraOn", "Value": "1"},
        "DescribeModelDataRet": {"TaskId": "task-of-a"},
        "SendOnlineMsg": {"Tid": tid, "MsgTopic": "t", "MsgContent": "hi"},
        "CreateStorageService": {"PkgId": "yc1m3d", "Tid": tid},
        "CreateStorage": {"PkgId": "yc1m3d", "Tid": tid},
        "DescribeStorageService": {"ServiceId": service.ServiceId},
        "DeliverStorageService": {"SrcServiceId": service.ServiceId, "Tid": tid},
        "RefundStorageService": {
            "ServiceId": service.ServiceId,
            "OrderId": service.Data[0].OrderId,
        },
        "UploadOtaVersion": release
        | {"VersionUrl": "https://x.example/f", "FileSize": 1, "Md5": "0" * 32},
        "DescribeOtaVersions": {"ProductId": pid, "Limit": 10, "Offset": 0},
        "RunOtaVersion": release,
        "RunTestOtaVersion": release | {"Tids": [tid]},
        "DisableOtaVersion": release,
        "ModifyVerContent": release | {"Remark": "theirs"},
        "DescribePubVersions": {"ProductId": pid},
        "DeleteOtaVersion": release,
        "UpgradeDevice": {"Tid": tid, "OtaVersion": "1.0.9"},
        "ClearDeviceActiveCode": {"Tids": [tid]},
        "CreateIotDataType": {"IotDataType": json.dumps(A_TYPE | {"id": "BType"})},
        "DescribeIotDataType": {},
        "DeleteIotDataType": {"TypeId": A_TYPE["id"]},
        "CreateGencode": {"ProductId": pid},
        "CreateUploadPath": {"ProductId": pid, "FileName": "f.bin"},
        "CreateUploadTest": {"PkgId": "yc1m3d", "Tid": tid},
        "RenewUploadTest": {"PkgId": "yc1m3d", "Tid": tid, "SessionKey": "sk1.x"},
        "SetMessageQueue": {"ProductId": pid, "MsgQueueType": 1, "MsgType": "0", "Topic": "t"},
        "DescribeMessageQueue": {"ProductId": pid},
        "DeleteMessageQueue": {"ProductId": pid},
        "CreateTraceIds": {"Tids": [tid]},
        "DeleteTraceIds": {"Tids": [tid]},
        "DescribeTraceIds": {},
        "DescribeTraceStatus": {"Tids": [tid]},
        "DescribeLogs": {"Tid": tid},
        "DescribeRunLog": {"Tid": tid},
    }


#: A custom type vendor A keeps (B's DeleteIotDataType of it finds nothing).
A_TYPE = {"id": "AType", "type": [{"id": "x", "type": "int32"}]}


def served_actions() -> set[str]:
    api = VendorApi(None, clock=time.time)  # type: ignore[arg-type]
    register_all(api)
    return set(api.actions)


def test_every_vendor_action_has_a_row() -> None:
    assert served_actions() == set(VENDOR_B)


async def test_vendor_actions_across_vendors_and_dead_keys(matrix: Matrix) -> None:
    a, b, cloud = matrix.a, matrix.b, matrix.cloud
    service = await a.avendor("CreateStorageService", PkgId="yc1m3d", Tid=a.device.tid)
    await a.avendor(
        "UploadOtaVersion", ProductId=a.product_id, OtaVersion="1.0.9",
        VersionUrl="https://x.example/f", FileSize=1, Md5="0" * 32,
    )  # fmt: skip
    await a.avendor("CreateIotDataType", IotDataType=json.dumps(A_TYPE))
    await a.avendor("CreateTraceIds", Tids=[a.device.tid])
    params = vendor_params(matrix, service)
    revoked = await asyncio.to_thread(_revoked_key, cloud)

    def send(key: tuple[str, str], action: str, body: dict[str, Any], ts: int) -> str | None:
        return error_code(signed_post(cloud, key, action, body, timestamp=ts))  # type: ignore[arg-type]

    for action, expected in VENDOR_B.items():
        before = await asnapshot(cloud.db)
        got = await asyncio.to_thread(send, b.key, action, params[action], int(matrix.clock()))
        assert got == expected, (action, got)
        if expected is not None:
            assert await asnapshot(cloud.db) == before, action
        now = int(matrix.clock())
        for key, ts, refusal in (
            (revoked, now, "AuthFailure.SecretIdNotFound"),
            (a.key, now - 400, "AuthFailure.SignatureExpire"),
        ):
            assert await asyncio.to_thread(send, key, action, params[action], ts) == refusal
        assert await asnapshot(cloud.db) == before or expected is None, action
    # What B may list holds nothing of A's.
    for action in ("DescribeOtaVersions", "DescribeProducts"):
        listed = await asyncio.to_thread(
            signed_post, cloud, b.key, action, params[action], timestamp=int(matrix.clock())
        )
        body = listed.json()["Response"]
        assert a.product_id not in json.dumps(body), (action, body)
    registered = params["DescribeRegistrationStatus"]
    status = await asyncio.to_thread(
        signed_post, cloud, b.key, "DescribeRegistrationStatus", registered,
        timestamp=int(matrix.clock()),
    )  # fmt: skip
    assert status.json()["Response"]["Data"] == [{"CunionId": "holder", "IsRegisted": False}]


def _revoked_key(cloud: CloudAddress) -> tuple[str, str]:
    import subprocess
    import sys

    from tests.support import new_key

    key = new_key(cloud.db)
    subprocess.run(
        [sys.executable, "-m", "iotvideo", "keys", "revoke", key[0], "--data", str(cloud.data),
         "--db", cloud.db],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return key


async def test_whep_and_console_routes(matrix: Matrix) -> None:
    """WHEP and the console's QR code take the same bearer tokens as the link and VAS:
    wrong, expired or revoked tokens get 401 (20010) and nothing reaches the device."""
    tid = matrix.a.device.tid
    parties = {**matrix.parties, "expired": matrix.expired, "revoked": matrix.revoked}
    offer = {"content": "v=0\r\n", "headers": {"content-type": "application/sdp"}}
    whep = dict(zip(ROLES, [(409, 8000)] * 4 + [(403, 8003), (404, 8002)], strict=True))
    whep |= {"expired": (401, 20010), "revoked": (401, 20010)}
    async with httpx.AsyncClient(base_url=matrix.cloud.url, timeout=30) as http:
        for role, party in parties.items():
            auth = {"authorization": f"Bearer {party.bearer}"}
            response = await http.post(
                f"/whep/{tid}", content=offer["content"], headers=offer["headers"] | auth
            )
            assert response.headers["content-type"] == "application/json", (role, response.text)
            got = (response.status_code, response.json()["code"])
            assert got == whep[role], (role, response.text)
            qr = await http.post(
                "/console/qr", json={"ssid": "s", "password": "p", "token": "t"}, headers=auth
            )
            wanted = 401 if role in ("expired", "revoked") else 200
            assert qr.status_code == wanted, (role, qr.text)
