"""The `iotvideo` command: help, keys and db subcommands, errors that say what to do."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cloud.official import call, client, refused
from tests.support import Cloud


def iotvideo(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `iotvideo` command as a user would; its output and exit status."""
    return subprocess.run(
        [sys.executable, "-m", "iotvideo", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
    )


def test_help_explains_every_command() -> None:
    out = iotvideo("--help")
    assert out.returncode == 0
    for command in ("cloud", "keys", "db"):
        assert command in out.stdout
    for sub in (
        ("keys", "create"),
        ("keys", "list"),
        ("keys", "revoke"),
        ("cloud",),
        ("db", "upgrade"),
    ):
        help_out = iotvideo(*sub, "--help")
        assert help_out.returncode == 0, help_out.stderr
        assert "--data" in help_out.stdout


def test_keys_create_prints_one_json_object(data_dir: Path) -> None:
    out = iotvideo("keys", "create", "--data", str(data_dir))
    assert out.returncode == 0, out.stderr
    key = json.loads(out.stdout)
    assert set(key) == {"SecretId", "SecretKey"}
    assert out.stdout.count("\n") == 1
    listed = iotvideo("keys", "list", "--data", str(data_dir), "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["SecretId"] for r in rows] == [key["SecretId"]]
    assert key["SecretKey"] not in listed.stdout, "list never shows secrets"
    narrow = {**os.environ, "COLUMNS": "60"}
    table = iotvideo("keys", "list", "--data", str(data_dir), env=narrow)
    assert key["SecretId"] in table.stdout and "active" in table.stdout
    assert rows[0]["VendorId"] in table.stdout, "ids are shown whole, whatever the width"


def test_key_rotation_within_a_vendor(data_dir: Path) -> None:
    first = json.loads(iotvideo("keys", "create", "--data", str(data_dir)).stdout)
    rows = [
        json.loads(x)
        for x in iotvideo("keys", "list", "--data", str(data_dir), "--json").stdout.splitlines()
    ]
    vendor = rows[0]["VendorId"]
    second = json.loads(
        iotvideo("keys", "create", "--data", str(data_dir), "--vendor", vendor).stdout
    )
    rows = [
        json.loads(x)
        for x in iotvideo("keys", "list", "--data", str(data_dir), "--json").stdout.splitlines()
    ]
    assert {r["SecretId"] for r in rows} == {first["SecretId"], second["SecretId"]}
    assert {r["VendorId"] for r in rows} == {vendor}
    unknown = iotvideo("keys", "create", "--data", str(data_dir), "--vendor", "vndnope")
    assert unknown.returncode == 1 and "keys list" in unknown.stderr


def test_keys_revoke_through_the_cli(sqlite_cloud: Cloud) -> None:
    key = sqlite_cloud.new_key()
    api = client(sqlite_cloud, key)
    call(api, "DescribeProducts", Limit=1, Offset=0)
    data = ["--data", str(sqlite_cloud.data), "--db", sqlite_cloud.db]
    out = iotvideo("keys", "revoke", key[0], *data)
    assert out.returncode == 0, out.stderr
    refused("AuthFailure.SecretIdNotFound", call, api, "DescribeProducts", Limit=1, Offset=0)
    rows = [json.loads(x) for x in iotvideo("keys", "list", *data, "--json").stdout.splitlines()]
    assert next(r for r in rows if r["SecretId"] == key[0])["RevokedAt"] is not None
    missing = iotvideo("keys", "revoke", "AKIDnope", *data)
    assert missing.returncode == 1 and "no key" in missing.stderr


def test_settings_from_the_environment(data_dir: Path) -> None:
    import os

    env = dict(os.environ, IOTVIDEO_DATA=str(data_dir))
    assert iotvideo("keys", "create", env=env).returncode == 0
    assert iotvideo("db", "current", env=env).stdout.strip() == _head_revision()


def _head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from iotvideo.cloud.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_missing_data_dir_says_what_to_do() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTVIDEO_")}
    out = iotvideo("keys", "list", env=env)
    assert out.returncode == 2
    assert "--data" in out.stderr and "IOTVIDEO_DATA" in out.stderr


def test_cloud_reports_a_busy_port(data_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = iotvideo("cloud", "--data", str(data_dir), "--port", str(port))
    assert out.returncode == 2
    assert "cannot listen" in out.stderr


@pytest.mark.parametrize("bad", ["--port=70000", "--port=x"])
def test_cloud_refuses_bad_settings(data_dir: Path, bad: str) -> None:
    out = iotvideo("cloud", "--data", str(data_dir), bad)
    assert out.returncode == 2
