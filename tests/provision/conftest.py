from __future__ import annotations

import pytest

from tests.link.world import World, make_world
from tests.support import Cloud


@pytest.fixture
def world(sqlite_cloud: Cloud) -> World:
    return make_world(sqlite_cloud)
