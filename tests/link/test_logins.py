"""Device logins read their keys together (``cloud/link/logins.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event

from iotvideo.cloud.db import Database
from iotvideo.cloud.link.logins import LoginKey, LoginKeys
from iotvideo.protocol.certificate import DeviceCertificate
from tests.link.world import Device, make_world
from tests.support import Cloud


def _public_key(device: Device) -> bytes:
    seed = DeviceCertificate.parse(device.certificate).private_key
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


async def test_logins_arriving_together_share_one_read_and_each_gets_its_row(
    cloud: Cloud,
) -> None:
    world = await asyncio.to_thread(make_world, cloud, devices=3)
    owned, free, disabled = world.devices
    await world.avendor("DisableDevice", Tids=[disabled.tid])
    db = Database(cloud.db)
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if "public_key" in sql:
            reads.append(sql)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        keys = LoginKeys(db)
        asked = [d.tid for d in world.devices] * 2 + ["NO-SUCH-DEVICE"]
        rows = await asyncio.gather(*(keys.get(tid) for tid in asked))
        # A login on its own later is read on its own, at once.
        alone = await keys.get(free.tid)
    finally:
        await db.close()
    assert rows[0] == rows[3] == LoginKey(_public_key(owned), disabled=False, owned=True)
    assert rows[1] == rows[4] == alone == LoginKey(_public_key(free), False, False)
    assert rows[2] == rows[5] == LoginKey(_public_key(disabled), disabled=True, owned=False)
    assert rows[6] is None
    assert len(reads) == 2, reads
