"""Bind tokens: how a device proves it was provisioned by the user who binds it.

1. The app asks for a bind token (``bindtoken.create``): short-lived, single-use, the user's.
2. It hands the token to the device over the LAN, the device's AP endpoint or a QR code.
3. The device presents it when it logs in (or with ``bind.present`` when already online);
   the cloud records which device presented it and tells the user's apps (``netcfg`` push:
   code 0, or 21101 expired/used, 21102 the device is owned by someone else).
4. The vendor's cloud calls CreateBinding with the token: it succeeds only for that device
   and that user, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud import ids
from iotvideo.cloud.db.tables import app_users, bind_tokens, bindings, devices
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.tokens import hash_token, looks_like_token

__all__ = [
    "BIND_TOKEN_TTL",
    "Presentation",
    "consume_bind_token",
    "issue_bind_token",
    "present_bind_token",
    "purge_bind_tokens",
]

#: Seconds a bind token lives: long enough to set a camera up, short enough to be useless later.
BIND_TOKEN_TTL = 600


@dataclass(frozen=True)
class Presentation:
    """The outcome of a device presenting a bind token, for the token's user."""

    access_id: str
    tid: str
    code: int
    msg: str


async def issue_bind_token(
    conn: AsyncConnection, access_id: str, *, now: int, max_live: int
) -> tuple[str, int]:
    """A new bind token for ``access_id``; 21100 if it already holds ``max_live``
    unexpired, unused ones (a user provisions a few cameras at a time, not thousands)."""
    live = await conn.scalar(
        select(func.count())
        .select_from(bind_tokens)
        .where(
            bind_tokens.c.access_id == access_id,
            bind_tokens.c.expires_at > now,
            bind_tokens.c.used_at.is_(None),
        )
    )
    if (live or 0) >= max_live:
        raise IVError.of(
            ErrorCode.IVNetCfgErr_GetTokenErr,
            f"{max_live} bind tokens are unused and unexpired; use them or wait "
            f"{BIND_TOKEN_TTL // 60} minutes",
        )
    token = ids.new_token("bt")
    expires = now + BIND_TOKEN_TTL
    await conn.execute(
        insert(bind_tokens).values(
            token_hash=hash_token(token),
            access_id=access_id,
            created_at=now,
            expires_at=expires,
            presented_tid=None,
            presented_at=None,
            used_at=None,
        )
    )
    return token, expires


async def present_bind_token(
    conn: AsyncConnection, token: str, tid: str, *, now: int
) -> Presentation | None:
    """Record that ``tid`` holds ``token``; None if the token is unknown (nobody to tell)."""
    if not looks_like_token(token):
        return None
    row = (
        await conn.execute(select(bind_tokens).where(bind_tokens.c.token_hash == hash_token(token)))
    ).first()
    if row is None or not await _same_vendor(conn, row.access_id, tid):
        # Another vendor's device holding this user's token learns nothing, and cannot
        # take the token from the user's own camera by presenting it first.
        return None
    if row.expires_at <= now or row.used_at is not None:
        return Presentation(
            row.access_id,
            tid,
            ErrorCode.IVNetCfgErr_TokenExpired,
            "the bind token expired or was used",
        )
    if row.presented_tid not in (None, tid):
        return Presentation(
            row.access_id,
            tid,
            ErrorCode.IVNetCfgErr_TokenExpired,
            "another device already presented this bind token",
        )
    owner = await conn.scalar(
        select(bindings.c.access_id).where(bindings.c.tid == tid, bindings.c.role == "owner")
    )
    if owner not in (None, row.access_id):
        return Presentation(
            row.access_id,
            tid,
            ErrorCode.IVNetCfgErr_DevStatusErr,
            "the device is bound to another user",
        )
    await conn.execute(
        update(bind_tokens)
        .where(bind_tokens.c.token_hash == row.token_hash)
        .values(presented_tid=tid, presented_at=now)
    )
    return Presentation(row.access_id, tid, 0, "the device is online and can be bound")


async def _same_vendor(conn: AsyncConnection, access_id: str, tid: str) -> bool:
    user_vendor = await conn.scalar(
        select(app_users.c.vendor_id).where(app_users.c.access_id == access_id)
    )
    device_vendor = await conn.scalar(select(devices.c.vendor_id).where(devices.c.tid == tid))
    return user_vendor is not None and user_vendor == device_vendor


async def consume_bind_token(
    conn: AsyncConnection, token: str, *, access_id: str, tid: str, now: int
) -> bool:
    """Use the token for binding ``tid`` to ``access_id``; False if it does not allow that."""
    if not looks_like_token(token):
        return False
    result = await conn.execute(
        update(bind_tokens)
        .where(
            bind_tokens.c.token_hash == hash_token(token),
            bind_tokens.c.access_id == access_id,
            bind_tokens.c.presented_tid == tid,
            bind_tokens.c.used_at.is_(None),
            bind_tokens.c.expires_at > now,
        )
        .values(used_at=now)
    )
    return bool(result.rowcount)


async def purge_bind_tokens(conn: AsyncConnection, *, now: int) -> int:
    result = await conn.execute(delete(bind_tokens).where(bind_tokens.c.expires_at < now - 86400))
    return int(result.rowcount)
