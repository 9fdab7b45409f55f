"""Firmware versions: their format, who is offered which, and the offer itself.

A version is ``x.y.z`` (x and y 0..63, z 1..524288, the reference platform's limits),
compared numerically. An officially published version (PubStatus 3) is offered to a
device on one of its ``OldVersions`` (any version when the list is empty) whose bucket
(a hash of its Tid and the version, 0..99) is below the gray value; a test release (2) to
its listed Tids only. A device is offered the newest such version above its own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud.db.tables import devices, ota_versions

__all__ = ["Offer", "bucket", "describe", "find_offer", "is_offered", "parse_version"]

_VERSION = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{1,6})\Z")
UNPUBLISHED, TEST, OFFICIAL, DISABLED = 1, 2, 3, 4

Offer = dict[str, Any]


def parse_version(text: str) -> tuple[int, int, int]:
    """``"1.2.3"`` -> (1, 2, 3); ValueError with the rule when it is not a version."""
    match = _VERSION.match(text.strip())
    if match:
        x, y, z = (int(g) for g in match.groups())
        if x <= 63 and y <= 63 and 1 <= z <= 524_288:
            return x, y, z
    raise ValueError(f"{text!r} is not a version x.y.z (x, y 0..63, z 1..524288)")


def _key(text: str) -> tuple[int, int, int]:
    try:
        return parse_version(text)
    except ValueError:
        return (-1, -1, -1)  # a device reporting a non-version is below every release


def bucket(tid: str, version: str) -> int:
    """The device's place (0..99) in a gray release of ``version``."""
    return int.from_bytes(hashlib.sha256(f"{tid}/{version}".encode()).digest()[:4], "big") % 100


def is_offered(row: Any, tid: str, current: str) -> bool:
    if row.pub_status == TEST:
        return tid in list(row.tids or [])
    if row.pub_status != OFFICIAL:
        return False
    old = row.old_versions or []
    if old and current not in old:
        return False
    return bucket(tid, row.ota_version) < int(row.gray_value)


def describe(contents: dict[str, Any] | None, language: str | None) -> str:
    """The release notes in ``language`` (en, zh/cn, tc/zh-tw/zh-hk), else the default."""
    contents = contents or {}
    lang = (language or "").lower()
    key = (
        "Tc"
        if lang in ("tc", "zh-tw", "zh-hk", "zh-hant")
        else "Cn"
        if lang.startswith(("zh", "cn"))
        else "En"
        if lang.startswith("en")
        else ""
    )
    for name in (key, "Default", "En", "Cn", "Tc"):
        if name and contents.get(name):
            return str(contents[name])
    return ""


def newest(rows: Iterable[Any], tid: str, current: str) -> Any | None:
    """The newest version above ``current`` offered to ``tid``."""
    candidates = [
        r for r in rows if _key(r.ota_version) > _key(current) and is_offered(r, tid, current)
    ]
    return max(candidates, key=lambda r: _key(r.ota_version), default=None)


async def find_offer(
    conn: AsyncConnection, tid: str, current: str | None, language: str | None
) -> Offer | None:
    """What ``tid`` may upgrade to: version, URL, size, MD5, notes; None when nothing."""
    device = (
        await conn.execute(
            select(devices.c.product_id, devices.c.ota_version).where(devices.c.tid == tid)
        )
    ).first()
    if device is None:
        return None
    rows = await conn.execute(
        select(ota_versions).where(ota_versions.c.product_id == device.product_id)
    )
    row = newest(rows, tid, current if current is not None else device.ota_version)
    if row is None:
        return None
    return {
        "version": row.ota_version,
        "url": row.version_url,
        "size": row.file_size,
        "md5": row.md5,
        "upgDescs": describe(row.contents, language),
    }
