"""Fixtures for live media: a cloud, a world with devices and users, loopback ICE."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser

from tests.link.world import World, make_world
from tests.live.browser import chromium_browser
from tests.support import Cloud, loopback_ice


@pytest.fixture(autouse=True)
def ice_on_loopback() -> Iterator[None]:
    """ICE on loopback only: no traffic leaves the machine."""
    with loopback_ice():
        yield


@pytest.fixture(scope="module")
def world(sqlite_cloud: Cloud) -> World:
    return make_world(sqlite_cloud, devices=2)


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, for a test's pages (closed after it)."""
    async with chromium_browser() as browser:
        yield browser
