"""HTTPS and wss:// with `--tls-cert/--tls-key`: the official client on its default https
profile, the official command-line client (tccli) unchanged, both SDKs over wss://, the
certificate reloaded on SIGHUP, and the public URL in what the cloud hands out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iotvideo.v20191126 import iotvideo_client

from tests.cloud.official import call
from tests.link.world import World, app_sdk, device_client, make_world
from tests.support import Cloud, start_cloud
from tests.tls import Tls, make_tls


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    return make_tls(tmp_path / "tls")


@pytest.fixture
def secure(tmp_path: Path, tls: Tls, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    """A cloud on HTTPS whose CA this process trusts (SSL_CERT_FILE: websockets, httpx)."""
    env = {"IOTVIDEO_TLS_CERT": str(tls.cert), "IOTVIDEO_TLS_KEY": str(tls.key)}
    cloud = start_cloud(tmp_path / "data", env=env)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
    yield cloud
    cloud.stop()


def official(cloud: Cloud, key: tuple[str, str], ca: Path) -> object:
    """The official client with its default profile (https), trusting the test CA."""
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=cloud.endpoint, certification=str(ca)))
    return iotvideo_client.IotvideoClient(credential.Credential(*key), "ap-guangzhou", profile)


def served_serial(port: int) -> int:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return int(x509.load_pem_x509_certificate(pem.encode()).serial_number)


def test_the_official_client_works_on_its_default_https_profile(secure: Cloud, tls: Tls) -> None:
    assert secure.url.startswith("https://")
    api = official(secure, secure.new_key(), tls.ca)
    made = call(api, "CreateAppUsr", CunionId="alice@example.com")
    assert made.NewRegist is True
    # Plain HTTP on the TLS port gets nowhere.
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"http://{secure.endpoint}/", content=b"{}", timeout=5)


def test_tccli_works_unchanged(secure: Cloud, tls: Tls, tmp_path: Path) -> None:
    """tccli trusts certifi's CA bundle (a real deployment has a public certificate); the
    test makes certifi name its own CA, and runs tccli as it is installed."""
    shim = tmp_path / "shim" / "certifi"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(f"def where():\n    return {str(tls.ca)!r}\n")
    secret_id, secret_key = secure.new_key()
    env = {
        **os.environ,
        "PYTHONPATH": str(shim.parent),
        "TENCENTCLOUD_SECRET_ID": secret_id,
        "TENCENTCLOUD_SECRET_KEY": secret_key,
        "TENCENTCLOUD_REGION": "ap-guangzhou",
    }
    tccli = Path(sys.executable).parent / "tccli"
    done = subprocess.run(
        [str(tccli), "iotvideo", "CreateAppUsr", "--CunionId", "bob@example.com",
         "--version", "2019-11-26", "--endpoint", secure.endpoint],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["NewRegist"] is True


async def test_both_sdks_over_wss(secure: Cloud, tls: Tls) -> None:
    world: World = await asyncio.to_thread(make_world, secure, devices=1)
    async with (
        device_client(secure.url, world.device) as device,
        app_sdk(secure.url, world.owner) as sdk,
    ):
        assert device.link.urls[0].startswith("wss://")
        await device.report("ProReadonly.temperature", 22.5)
        value = await sdk.message.read_property(world.device.tid, "ProReadonly.temperature")
        assert value["stVal"] == 22.5


def test_sighup_reloads_the_certificate(secure: Cloud, tls: Tls, tmp_path: Path) -> None:
    assert served_serial(secure.port) == tls.serial
    renewed = make_tls(tmp_path / "renewed")
    tls.cert.write_bytes(renewed.cert.read_bytes())
    tls.key.write_bytes(renewed.key.read_bytes())
    secure.proc.send_signal(signal.SIGHUP)
    secure.wait_for_log("TLS certificate reloaded")
    assert served_serial(secure.port) == renewed.serial
    assert secure.proc.poll() is None


def test_a_public_url_is_used_for_every_url_handed_out(tmp_path: Path) -> None:
    public = "https://cloud.example.test"
    cloud = start_cloud(tmp_path / "data", env={"IOTVIDEO_PUBLIC_URL": public})
    try:
        world = make_world(cloud, devices=1)
        tid = world.device.tid
        world.vendor("CreateStorageService", PkgId="yc1m3d", Tid=tid)
        auth = {"authorization": f"Bearer {world.owner.token}"}
        now = int(time.time())
        listed = httpx.get(
            f"{cloud.url}/vas/events?deviceId={tid}&startTime={now - 60}&endTime={now}",
            headers=auth,
            timeout=30,
        ).json()
        assert listed["data"]["imgUrlPrefix"] == f"{public}/vas/img/"
        address = httpx.get(
            f"{cloud.url}/vas/address?deviceId={tid}&startTime={now - 60}&endTime={now}",
            headers=auth,
            timeout=30,
        ).json()
        assert address["data"]["url"].startswith(f"{public}/vas/hls/"), address
    finally:
        cloud.stop()
