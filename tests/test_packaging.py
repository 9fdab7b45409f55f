"""The base distribution is the app and device SDKs and the command line: it works without
the server stack, which is the `cloud` extra."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import requires, version

import iotvideo

SERVER = ("fastapi", "sqlalchemy", "alembic", "aiosqlite", "asyncpg", "redis", "pydantic_settings")

# Runs with the server's packages made unimportable, as on an install without extras.
_WITHOUT_SERVER = """
import sys
for name in {server!r}:
    sys.modules[name] = None
import iotvideo.app, iotvideo.device, iotvideo.device.simulator, iotvideo.media.webrtc
from typer.testing import CliRunner
from iotvideo.cli import app
runner = CliRunner()
assert runner.invoke(app, ["--help"]).exit_code == 0
assert runner.invoke(app, ["vendor", "call", "--help"]).exit_code == 0
served = runner.invoke(app, ["cloud", "--data", "x"])
print(served.exit_code, repr(served.exception), served.output)
"""


def test_the_base_requirements_leave_the_server_out() -> None:
    base = [r for r in requires("iotvideo") or [] if "extra ==" not in r]
    names = {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in base}
    assert not names & {"fastapi", "sqlalchemy", "alembic", "aiosqlite", "asyncpg", "redis"}
    assert "uvloop" not in names, "uvloop only where uvicorn[standard] installs it"
    assert {"aiortc", "av", "httpx", "websockets"} <= names


def test_the_sdks_and_cli_work_without_the_server_stack() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SERVER.format(server=SERVER)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    code, exception, message = out.split(" ", 2)
    assert code == "2" and exception.startswith("SystemExit")
    assert "pip install 'iotvideo[cloud]'" in message


def test_one_version_string() -> None:
    assert iotvideo.__version__ == version("iotvideo")
    out = subprocess.run(
        [sys.executable, "-m", "iotvideo", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == version("iotvideo")
