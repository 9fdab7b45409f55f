"""Home Assistant tests of custom_components/iotvideo, against a real platform.

They run in their own virtualenv (``.venv-ha``: Home Assistant core and
pytest-homeassistant-custom-component pin versions of their own), made by ``make test``.
The platform runs in processes of the project's main virtualenv (``IOTVIDEO_PYTHON``,
default ``.venv/bin/python``): a cloud on loopback with SQLite, a vendor set up with
``iotvideo vendor quickstart`` (two cameras owned by one app user), and simulated cameras
(``iotvideo device run``) that tests start and stop. Home Assistant talks to them only as
a user would: through the integration and the app SDK it requires.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = "pytest_homeassistant_custom_component"

ROOT = Path(__file__).resolve().parents[1]
PYTHON = os.environ.get("IOTVIDEO_PYTHON", str(ROOT / ".venv" / "bin" / "python"))


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: Any) -> None:
    """Load custom_components/iotvideo from the repository."""


@pytest.fixture(autouse=True)
def loopback_only(socket_enabled: Any) -> Iterator[None]:
    """The harness blocks sockets; these tests talk to the platform on 127.0.0.1 only,
    and WebRTC offers loopback host candidates only (no traffic leaves the machine)."""
    from iotvideo.media.webrtc import host_addresses, set_host_addresses

    previous = host_addresses()
    set_host_addresses(["127.0.0.1"])
    yield
    set_host_addresses(previous)


def _iotvideo(*args: str, env: dict[str, str] | None = None, **kw: Any) -> str:
    done = subprocess.run(
        [PYTHON, "-m", "iotvideo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
        **kw,
    )
    if done.returncode != 0:
        raise RuntimeError(f"iotvideo {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


class Process:
    """A process of the platform, its stderr kept, stopped at the end."""

    def __init__(
        self,
        args: list[str],
        ready: str,
        timeout: float = 60,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "iotvideo", *args],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "IOTVIDEO_HEARTBEAT_INTERVAL": "0.5", **(env or {})},
        )
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()
        self.log: list[str] = []
        self.match: re.Match[str] | None = None
        found = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.log.append(line)
                if self.match is None and (m := re.search(ready, line)):
                    self.match = m
                    found.set()
            found.set()

        self._reader = threading.Thread(target=pump, daemon=True)
        self._reader.start()
        if not found.wait(timeout) or self.match is None:
            self.stop()
            raise RuntimeError(f"{args[0]} did not start:\n" + "".join(self.log))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)


@dataclass
class Platform:
    """A cloud with a vendor, an app user owning two cameras, and their certificates."""

    url: str
    data: Path
    key: dict[str, str]
    access_id: str
    access_token: str
    certificates: list[Path]
    tids: list[str]
    cameras: dict[str, Process] = field(default_factory=dict)
    restream: Process | None = None

    def vendor(self, action: str, **fields: Any) -> dict[str, Any]:
        """A vendor-API call (``iotvideo vendor call``): its response fields."""
        out = _iotvideo(
            "vendor", "call", action, json.dumps(fields), "--cloud", self.url,
            env={"IOTVIDEO_SECRET_ID": self.key["SecretId"],
                 "IOTVIDEO_SECRET_KEY": self.key["SecretKey"]},
        )  # fmt: skip
        return dict(json.loads(out))

    def start_camera(
        self, index: int = 0, *, audio: str = "none", motion_interval: float = 3600
    ) -> Process:
        """Run the simulated camera ``index`` until :meth:`stop_camera`."""
        tid = self.tids[index]
        camera = Process(
            ["device", "run", "--cert", str(self.certificates[index]), "--cloud", self.url,
             "--video", "testsrc:?definition=mid&fps=10", "--audio", audio,
             "--talk-dir", str(self.data / f"talk{index}"),
             "--vas-dir", str(self.data / f"vas{index}"),
             "--firmware-dir", str(self.data / f"firmware{index}"),
             "--ice-address", "127.0.0.1", "--motion-interval", str(motion_interval)],
            ready=r"connecting to",
        )  # fmt: skip
        self.cameras[tid] = camera
        return camera

    def start_restream(self) -> str:
        """Run ``iotvideo restream`` as the app user; its RTSP base URL with credentials."""
        port = _free_port()
        self.restream = Process(
            ["restream", "--cloud", self.url, "--access-id", self.access_id,
             "--host", "127.0.0.1", "--rtsp-port", str(port), "--http-port", str(_free_port()),
             "--rtsp-user", "ha", "--rtsp-password-stdin", "--ice-address", "127.0.0.1"],
            ready=r"rtsp://",
            env={"IOTVIDEO_ACCESS_TOKEN": self.access_token},
            stdin="restream password\n",
        )  # fmt: skip
        return f"rtsp://ha:restream%20password@127.0.0.1:{port}"

    def stop_restream(self) -> None:
        if self.restream is not None:
            self.restream.stop()
            self.restream = None

    def stop_camera(self, index: int = 0) -> None:
        camera = self.cameras.pop(self.tids[index], None)
        if camera is not None:
            camera.stop()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data = tmp_path_factory.mktemp("cloud")
    cloud = Process(
        ["cloud", "--data", str(data), "--port", "0", "--log-level", "warning"],
        ready=r"listening on (http://\S+)",
    )
    assert cloud.match is not None
    url = cloud.match[1]
    try:
        key = json.loads(_iotvideo("keys", "create", "--data", str(data)))
        out = data / "quickstart"
        summary = json.loads(
            _iotvideo(
                "vendor",
                "quickstart",
                "--out",
                str(out),
                "--devices",
                "2",
                "--cloud",
                url,
                env={
                    "IOTVIDEO_SECRET_ID": key["SecretId"],
                    "IOTVIDEO_SECRET_KEY": key["SecretKey"],
                },
            )
        )
        app = dict(
            line.split("=", 1) for line in (out / "app.env").read_text().splitlines() if "=" in line
        )
        # The demo camera's model, with a number and a text setting besides.
        model = json.loads(_iotvideo("device", "model"))
        model["ProWritable"]["volume"] = {"type": "uint32", "min": 0, "max": 100, "unit": "%"}
        model["ProWritable"]["osdText"] = {"type": "string", "max": 32}
        env = {"IOTVIDEO_SECRET_ID": key["SecretId"], "IOTVIDEO_SECRET_KEY": key["SecretKey"]}
        _iotvideo(
            "vendor", "call", "RunIotModel",
            json.dumps({"ProductId": summary["ProductId"], "IotModel": json.dumps(model)}),
            "--cloud", url, env=env,
        )  # fmt: skip
        certificates = [Path(d["CertificateFile"]) for d in summary["Devices"]]
        tids = [str(d["Tid"]) for d in summary["Devices"]]
        platform = Platform(
            url,
            data,
            key,
            app["IOTVIDEO_ACCESS_ID"],
            app["IOTVIDEO_ACCESS_TOKEN"],
            certificates,
            tids,
        )
        yield platform
        for tid in list(platform.cameras):
            platform.cameras.pop(tid).stop()
    finally:
        cloud.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


sys.path.insert(0, str(ROOT))  # custom_components is found from the repository's root
