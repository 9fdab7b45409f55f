"""Wired and AP provisioning across a real network: the phone in one namespace (with the
cloud), the camera in another, joined by a veth pair; DNS-SD discovery, the sealed local
endpoint, and `avahi-browse` seeing the camera."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.netns import CAMERA_IP, PHONE_IP, ROOT, Lan, lan
from tests.support import LineWatcher, new_key


@dataclass
class Home:
    net: Lan
    cloud: str
    db: str
    key: tuple[str, str]
    devices: list[dict[str, str]]
    tmp: Path

    def phone(self, *args: str) -> dict[str, Any]:
        """Run the phone's scenario in its namespace; its JSON report."""
        cmd = self.net.python(self.net.phone, "-m", "tests.provision.lan_scenario", *args)
        cmd += [
            "--cloud",
            self.cloud,
            "--db",
            self.db,
            "--secret-id",
            self.key[0],
            "--secret-key",
            self.key[1],
        ]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=90, check=False)
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout.splitlines()[-1]))

    def camera(self, index: int, mode: str) -> LineWatcher:
        """The camera, provisioning itself in its namespace."""
        cert = self.tmp / f"camera{index}.cert"
        cert.write_text(self.devices[index]["certificate"])
        cmd = self.net.python(
            self.net.camera, "-m", "iotvideo", "device", "provision", "--cert", str(cert)
        )
        cmd += ["--cloud", self.cloud, f"--{mode}", "--listen", CAMERA_IP]
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        watcher = LineWatcher(proc)
        watcher.wait_for("provisioning endpoint on")
        return watcher


@pytest.fixture
def home() -> Iterator[Home]:
    with lan() as net, tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        db = f"sqlite+aiosqlite:///{data / 'iotvideo.db'}"
        cmd = net.python(net.phone, "-m", "iotvideo", "cloud", "--data", str(data), "--db", db)
        cmd += ["--host", PHONE_IP, "--port", "0", "--log-level", "warning"]
        cloud = LineWatcher(subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True))
        try:
            url = cloud.wait_for(r"listening on (http://\S+)")[1]
            key = new_key(db)
            home = Home(net, url, db, key, [], data)
            setup = net.python(
                net.phone, "-m", "tests.provision.lan_scenario", "setup", "--cloud", url, "--db", db
            )
            setup += ["--secret-id", key[0], "--secret-key", key[1]]
            out = subprocess.run(
                setup, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
            )
            home.devices = json.loads(out.stdout.splitlines()[-1])
            yield home
        finally:
            assert cloud.stop() == 0


def test_wired_flow(home: Home) -> None:
    camera = home.camera(0, "lan")  # a wired camera logs in before it announces itself
    try:
        assert any(" online" in line for line in camera.lines)
        tid = home.devices[0]["tid"]
        report = home.phone("run", "--tid", tid, "--mode", "wired")
        assert {"tid": tid, "host": CAMERA_IP, "bindable": True, "mode": "lan"} in report["found"]
        assert report["observed"] == [tid, 0]
        assert report["read"] == 3, "the app reads the bound camera's property"
        assert report["bindable_after"] == [False], "the announcement follows the owner"
    finally:
        camera.stop()


def test_ap_flow(home: Home) -> None:
    camera = home.camera(1, "ap")
    try:
        tid = home.devices[1]["tid"]
        report = home.phone("run", "--tid", tid, "--mode", "ap")
        assert {"tid": tid, "host": CAMERA_IP, "bindable": True, "mode": "ap"} in report["found"]
        assert report["observed"] == [tid, 0]
        assert report["read"] == 3
        camera.wait_for("would join Wi-Fi 'home-net'")
        assert not any("correct horse" in line for line in camera.lines), (
            "the password is never logged"
        )
    finally:
        camera.stop()


def test_an_impostor_is_not_sent_the_password(home: Home) -> None:
    """The phone checks the endpoint's identity with the cloud's key for the Tid it means."""
    camera = home.camera(2, "ap")
    try:
        report = home.phone(
            "run",
            "--tid",
            home.devices[2]["tid"],
            "--mode",
            "ap",
            "--wrong-identity",
            home.devices[0]["tid"],
        )
        assert report["refused"] == 20016
    finally:
        camera.stop()


@pytest.fixture
def avahi(home: Home) -> Iterator[dict[str, str]]:
    """avahi-daemon on the phone's side of the LAN, on a private system bus; the
    environment that points avahi-browse at it."""
    if shutil.which("avahi-daemon") is None or shutil.which("avahi-browse") is None:
        pytest.fail("avahi-daemon and avahi-utils are needed (.ci/run installs them)")
    bus_address = f"unix:path={home.tmp / 'system_bus'}"
    bus_pid = subprocess.run(
        [
            "dbus-daemon",
            "--config-file=/usr/share/dbus-1/system.conf",
            f"--address={bus_address}",
            "--nopidfile",
            "--fork",
            "--print-pid",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus_address}
    conf = home.tmp / "avahi-daemon.conf"
    conf.write_text(
        "[server]\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=" + home.net.phone_if + "\n"
        "[publish]\ndisable-publishing=yes\n[reflector]\n[rlimits]\n"
    )
    daemon = subprocess.Popen(
        home.net.cmd(
            home.net.phone, "avahi-daemon", "--no-chroot", "--no-drop-root", "-f", str(conf)
        ),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    watcher = LineWatcher(daemon)
    try:
        watcher.wait_for("Server startup complete")
        yield env
    finally:
        watcher.stop()
        os.kill(int(bus_pid), 15)


def test_avahi_browse_sees_the_camera(home: Home, avahi: dict[str, str]) -> None:
    camera = home.camera(1, "ap")
    try:
        out = subprocess.run(
            ["avahi-browse", "--resolve", "--parsable", "--terminate", "_iotvideo._tcp"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env=avahi,
        )
        resolved = [line.split(";") for line in out.stdout.splitlines() if line.startswith("=")]
        tid = home.devices[1]["tid"]
        ours = [r for r in resolved if r[3] == tid]
        assert ours, out.stdout
        assert (
            ours[0][7] == CAMERA_IP
            and f'"tid={tid}"' in ours[0][9]
            and '"bindable=1"' in ours[0][9]
        )
    finally:
        camera.stop()


def test_lan_commands_from_the_shell(home: Home) -> None:
    """`iotvideo app lan list` finds the camera; `lan send-wifi` provisions it."""
    camera = home.camera(1, "ap")
    try:
        tid = home.devices[1]["tid"]
        user = home.phone("user")
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOTVIDEO_")}
        env |= {
            "IOTVIDEO_CLOUD": home.cloud,
            "IOTVIDEO_ACCESS_ID": user["access_id"],
            "IOTVIDEO_ACCESS_TOKEN": user["token"],
        }

        def iotvideo(*args: str) -> subprocess.CompletedProcess[str]:
            cmd = home.net.python(home.net.phone, "-m", "iotvideo", *args)
            return subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
            )

        listed = iotvideo("app", "lan", "list", "--interface", PHONE_IP, "--timeout", "1.5")
        assert listed.returncode == 0, listed.stderr
        found = [json.loads(line) for line in listed.stdout.splitlines()]
        assert {
            "device_id": tid,
            "product_id": found[0]["product_id"],
            "host": CAMERA_IP,
            "port": found[0]["port"],
            "bindable": True,
            "mode": "ap",
        } in found
        token = iotvideo("app", "netconfig", "token")
        assert token.returncode == 0, token.stderr
        bind_token = token.stdout.strip()
        sent = iotvideo(
            "app", "lan", "send-wifi", tid, "--token", bind_token, "--ssid", "loft",
            "--password", "hunter22", "--interface", PHONE_IP,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout) == {"device_id": tid, "sent": True}
        camera.wait_for("would join Wi-Fi 'loft'")
        camera.wait_for(f"device {tid} online")
        missing = iotvideo(
            "app", "lan", "send-wifi", "no-such-device", "--token", bind_token,
            "--interface", PHONE_IP,
        )  # fmt: skip
        assert missing.returncode == 1
        assert "IVNetCfgErr_DevStatusErr" in missing.stderr and "not on this LAN" in missing.stderr
    finally:
        camera.stop()
