"""A newcomer's first hour with only `iotvideo` commands: from a vendor key to a camera
online and answering, as the README's "first hour" shows."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import iotvideo
from tests.support import Cloud, LineWatcher, start_cloud


def env_file(path: Path) -> dict[str, str]:
    """What `set -a; . FILE; set +a` would export."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line)
    return dict(pairs)


def camera(cert: Path, env: dict[str, str]) -> LineWatcher:
    proc = subprocess.Popen(
        [sys.executable, "-m", "iotvideo", "device", "run", "--cert", str(cert)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    return LineWatcher(proc)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    running = start_cloud(tmp_path / "data")
    yield running
    running.stop()


@pytest.fixture
def vendor_env(cloud: Cloud, tmp_path: Path) -> dict[str, str]:
    """`iotvideo keys create --format env > vendor.env; set -a; . ./vendor.env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("IOTVIDEO_")}
    made = iotvideo("keys", "create", "--data", str(cloud.data), "--format", "env", env=base)
    assert made.returncode == 0, made.stderr
    (tmp_path / "vendor.env").write_text(made.stdout)
    keys = env_file(tmp_path / "vendor.env")
    assert set(keys) == {"IOTVIDEO_SECRET_ID", "IOTVIDEO_SECRET_KEY"}
    return {**base, **keys, "IOTVIDEO_CLOUD": cloud.url}


def test_from_a_key_to_a_camera_answering(vendor_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "quickstart"
    started = iotvideo("vendor", "quickstart", "--out", str(out), env=vendor_env)
    assert started.returncode == 0, started.stderr
    summary = json.loads(started.stdout)
    tid = summary["Devices"][0]["Tid"]
    cert = Path(summary["Devices"][0]["CertificateFile"])
    # The next three commands, as printed.
    assert f"iotvideo device run --cert {cert}" in started.stderr
    assert f"iotvideo app prop get {tid}" in started.stderr
    for secret in (cert, Path(summary["EnvFile"])):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600

    device = camera(cert, vendor_env)
    try:
        device.wait_for(rf"device {tid} online")
        app_env = {**vendor_env, **env_file(Path(summary["EnvFile"]))}
        answer = iotvideo("app", "prop", "get", tid, "ProReadonly.temperature", env=app_env)
        assert answer.returncode == 0, answer.stderr
        assert -10 <= json.loads(answer.stdout)["stVal"] <= 60  # the simulated reading
        night = iotvideo(
            "app", "prop", "set", tid, "ProWritable.nightMode.setVal", "2", env=app_env
        )
        assert night.returncode == 0, night.stderr
        device.wait_for(r"night mode -> 2")
    finally:
        assert device.stop(signal.SIGINT) == 0
    assert not any("Traceback" in line for line in device.lines)


def test_vendor_call_prints_the_response_and_fails_with_the_api_code(
    vendor_env: dict[str, str], tmp_path: Path
) -> None:
    made = iotvideo(
        "vendor",
        "call",
        "CreateProduct",
        '{"ProductModel": "m", "ProductName": "Cam", "ProductDescription": "d"}',
        env=vendor_env,
    )
    assert made.returncode == 0, made.stderr
    product_id = json.loads(made.stdout)["Data"]["ProductId"]
    params = tmp_path / "describe.json"
    params.write_text(json.dumps({"ProductId": product_id}))
    described = iotvideo("vendor", "call", "DescribeProduct", f"@{params}", env=vendor_env)
    assert json.loads(described.stdout)["Data"]["ProductName"] == "Cam"
    from_stdin = iotvideo(
        "vendor", "call", "DescribeProduct", "@-", env=vendor_env, stdin=params.read_text()
    )
    assert json.loads(from_stdin.stdout)["Data"]["ProductId"] == product_id

    refused = iotvideo("vendor", "call", "DescribeProduct", '{"ProductId": "NOPE"}', env=vendor_env)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "ResourceNotFound" in refused.stderr and "RequestId" in refused.stderr

    # The key from standard input, nothing secret on the command line.
    key = vendor_env["IOTVIDEO_SECRET_KEY"]
    no_key = {k: v for k, v in vendor_env.items() if k != "IOTVIDEO_SECRET_KEY"}
    by_stdin = iotvideo(
        "vendor", "call", "DescribeProducts", '{"Limit": 10, "Offset": 0}',
        "--secret-key-stdin", env=no_key, stdin=key + "\n",
    )  # fmt: skip
    assert json.loads(by_stdin.stdout)["TotalCount"] == 1
    missing = iotvideo("vendor", "call", "DescribeProducts", env=no_key)
    assert missing.returncode == 2 and "IOTVIDEO_SECRET_KEY" in missing.stderr
    wrong = iotvideo(
        "vendor", "call", "DescribeProducts", env={**vendor_env, "IOTVIDEO_SECRET_KEY": "x"}
    )
    assert wrong.returncode == 1 and "AuthFailure.SignatureFailure" in wrong.stderr


def test_a_camera_whose_product_has_no_model_says_so_and_keeps_running(
    vendor_env: dict[str, str], tmp_path: Path
) -> None:
    """A product made with the official client alone has no thing model yet."""

    def call(action: str, params: dict[str, object]) -> dict[str, object]:
        done = iotvideo("vendor", "call", action, json.dumps(params), env=vendor_env)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    product = call(
        "CreateProduct", {"ProductModel": "m", "ProductName": "Bare", "ProductDescription": "d"}
    )
    product_id = product["Data"]["ProductId"]  # type: ignore[index]
    created = call("CreateDevices", {"ProductId": product_id, "Number": 1})["Data"][0]  # type: ignore[index]
    cert = tmp_path / "bare.cert"
    cert.write_text(created["Certificate"])
    device = camera(cert, vendor_env)
    try:
        device.wait_for(rf"device {created['Tid']} online")
        said = device.wait_for(r"ProReadonly.cameraState is not in the thing model.*")
        assert f"iotvideo vendor publish-model {product_id}" in said[0]
        # Still running: it answers the app's reads of what it can.
        published = iotvideo("vendor", "publish-model", product_id, env=vendor_env)
        assert published.returncode == 0, published.stderr
        assert device.proc.poll() is None
    finally:
        assert device.stop(signal.SIGINT) == 0
    assert not any("Traceback" in line for line in device.lines)


def test_an_unreachable_cloud_is_named_with_its_cause_at_once(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IOTVIDEO_")},
        "IOTVIDEO_CLOUD": "http://127.0.0.1:9",
        "IOTVIDEO_ACCESS_ID": "1",
        "IOTVIDEO_ACCESS_TOKEN": "x",
        "IOTVIDEO_SECRET_ID": "AKIDx",
        "IOTVIDEO_SECRET_KEY": "x",
    }
    app = iotvideo("app", "prop", "get", "TID", env=env)
    assert app.returncode == 1
    assert "ws://127.0.0.1:9/link/app: connection refused" in app.stderr
    vendor = iotvideo("vendor", "call", "DescribeProducts", env=env)
    assert vendor.returncode == 1
    assert "cannot reach http://127.0.0.1:9: connection refused" in vendor.stderr
