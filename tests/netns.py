"""A two-host LAN for tests: network namespaces joined by a veth pair.

The phone side gets 198.51.100.1, the camera side 198.51.100.2 (a documentation range:
nothing leaves these namespaces). Both have multicast on their veth end, so DNS-SD works
between them and nowhere else.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHONE_IP = "198.51.100.1"
CAMERA_IP = "198.51.100.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Lan:
    phone: str
    camera: str
    phone_if: str
    camera_if: str

    def cmd(self, ns: str, *args: str) -> list[str]:
        """A command line that runs ``args`` inside namespace ``ns``."""
        return ["ip", "netns", "exec", ns, *args]

    def python(self, ns: str, *args: str) -> list[str]:
        return self.cmd(ns, sys.executable, *args)


@contextmanager
def lan() -> Iterator[Lan]:
    tag = secrets.token_hex(3)
    phone, camera = f"ivphone{tag}", f"ivcam{tag}"
    phone_if, camera_if = f"ivp{tag}", f"ivc{tag}"
    _ip("netns", "add", phone)
    _ip("netns", "add", camera)
    try:
        _ip("link", "add", phone_if, "type", "veth", "peer", "name", camera_if)
        _ip("link", "set", phone_if, "netns", phone)
        _ip("link", "set", camera_if, "netns", camera)
        for ns, iface, address in ((phone, phone_if, PHONE_IP), (camera, camera_if, CAMERA_IP)):
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", iface)
            _ip("-n", ns, "link", "set", iface, "up", "multicast", "on")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", iface)
        yield Lan(phone, camera, phone_if, camera_if)
    finally:
        for ns in (phone, camera):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
