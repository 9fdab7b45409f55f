"""Fixtures for live media: a cloud, a world with devices and users, loopback ICE."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from iotvideo.media.webrtc import host_addresses, set_host_addresses
from tests.link.world import World, make_world
from tests.support import Cloud


@pytest.fixture(autouse=True)
def loopback_ice() -> Iterator[None]:
    """ICE on loopback only: no traffic leaves the machine."""
    previous = host_addresses()
    set_host_addresses(["127.0.0.1"])
    try:
        yield
    finally:
        set_host_addresses(previous)


@pytest.fixture(scope="module")
def world(sqlite_cloud: Cloud) -> World:
    return make_world(sqlite_cloud, devices=2)
