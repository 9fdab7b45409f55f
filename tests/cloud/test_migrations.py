"""Migrations keep what is stored: 0008 (event ids per device) up and down with data."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from iotvideo.cloud.db import MIGRATIONS
from tests.link.world import World, make_world
from tests.support import start_cloud
from tests.vas.test_upload_limits import _jpeg, signed


def _alembic(db_file: Path, to: str, *, down: bool = False) -> None:
    engine = create_engine(f"sqlite:///{db_file}")
    with engine.begin() as connection:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, to)
    engine.dispose()


def _events(db_file: Path) -> list[tuple[str, str]]:
    engine = create_engine(f"sqlite:///{db_file}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT tid, alarm_id FROM cloud_events ORDER BY tid"))
        found = [(str(r[0]), str(r[1])) for r in rows]
    engine.dispose()
    return found


async def test_event_ids_per_device_up_and_down(tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path / "data")
    try:
        world: World = await asyncio.to_thread(make_world, cloud, devices=2)
        now = int(time.time())
        target = f"/vas/device/event?chn=0&alarmType=1&start={now}&id=ev7"
        async with httpx.AsyncClient(base_url=cloud.url, timeout=30) as http:
            for index in (0, 1):
                tid = world.devices[index].tid
                await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=tid)
                body = _jpeg()
                headers = signed(world, index, target, body)
                assert (await http.post(target, content=body, headers=headers)).status_code == 200
    finally:
        cloud.stop()
    db = tmp_path / "data" / "iotvideo.db"
    both = sorted((d.tid, "ev7") for d in world.devices)
    assert _events(db) == both
    _alembic(db, "0007", down=True)  # the old key keeps one of the two
    assert _events(db) == both[:1]
    _alembic(db, "head")
    assert _events(db) == both[:1]
