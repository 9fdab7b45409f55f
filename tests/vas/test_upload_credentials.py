"""CreateUploadTest / RenewUploadTest: a device's upload credential from the vendor API.
A segment sent with it as a Bearer token lands in the device's cloud storage; a forged,
foreign or stale one stores nothing."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.cloud.official import call, refused
from tests.link.world import World, make_world
from tests.support import Cloud, snapshot


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> World:
    return make_world(cloud, devices=2)


def _upload(world: World, token: str, start: int) -> httpx.Response:
    return httpx.post(
        f"{world.cloud.url}/vas/device/segment?chn=0&start={start}&end={start + 2000}",
        content=b"\x47" + b"\0" * 187,
        headers={"authorization": f"Bearer {token}"},
    )


def test_a_credential_uploads_as_its_device_only(world: World) -> None:
    a, b = world.devices[0].tid, world.devices[1].tid
    call(world.api, "CreateStorageService", PkgId="yc1m3d", Tid=a)
    made = call(world.api, "CreateUploadTest", PkgId="yc1m3d", Tid=a).Data
    assert (made.StorageBucket, made.StoragePath) == ("iotvideo", f"/vas/{a}/")
    cert = made.TempCertificate
    assert time.time() < cert.ExpiredTime <= time.time() + 1801
    start = int(time.time() * 1000) - 60_000
    stored = _upload(world, cert.Token, start)
    assert stored.status_code == 200 and stored.json()["data"] == {"duplicate": False}
    # It was kept: the same segment again is a duplicate.
    assert _upload(world, cert.Token, start).json()["data"] == {"duplicate": True}

    before = snapshot(world.cloud.db)
    # Altered, or for a device with no storage service: nothing stored.
    forged = cert.Token[:-1] + ("0" if cert.Token[-1] != "0" else "1")
    assert _upload(world, forged, start + 5000).status_code == 401
    other = call(world.api, "CreateUploadTest", PkgId="yc1m3d", Tid=b).Data.TempCertificate
    assert _upload(world, other.Token, start + 5000).status_code == 403
    assert snapshot(world.cloud.db) == before

    # The session key renews the credential; another device's or package's does not.
    renewed = call(
        world.api, "RenewUploadTest", PkgId="yc1m3d", Tid=a, SessionKey=made.SessionKey
    ).Data.TempCertificate
    assert renewed.ExpiredTime >= cert.ExpiredTime
    assert _upload(world, renewed.Token, start + 10_000).status_code == 200
    for wrong in (
        {"Tid": b, "PkgId": "yc1m3d"},
        {"Tid": a, "PkgId": "ye1m3d"},
        {"Tid": a, "PkgId": "yc1m3d", "SessionKey": made.SessionKey[:-2] + "00"},
    ):
        refused(
            "InvalidParameterValue",
            call,
            world.api,
            "RenewUploadTest",
            **({"SessionKey": made.SessionKey} | wrong),
        )
    refused("ResourceNotFound", call, world.api, "CreateUploadTest", PkgId="yc1m3d", Tid="nope")
    refused("InvalidParameterValue", call, world.api, "CreateUploadTest", PkgId="x", Tid=a)
