"""Access tokens (issue, look up, revoke; stored only as SHA-256 hashes) and the one rule
of who may reach a device (:func:`device_role`), used by the link, VAS, WHEP and the
console alike."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ColumnElement, and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud import ids
from iotvideo.cloud.db.tables import AnyRow, access_tokens, app_users, bindings, devices
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.tokens import hash_token, looks_like_token

__all__ = [
    "NEVER",
    "TokenKind",
    "device_role",
    "find_token",
    "issue_token",
    "purge_tokens",
    "revoke_tokens",
]

#: ``expires_at`` of tokens that live as long as what they grant (binding tokens).
NEVER = (1 << 62) - 1
#: Revoked and expired tokens are kept this long, so that their use is reported as such.
KEEP_DEAD_TOKENS = 86400


class TokenKind(StrEnum):
    USER = "user"  # CreateUsrToken: the app SDK logs in with it
    DEVICE = "device"  # CreateDevToken: temporary access to one device
    ANONYMOUS = "anonymous"  # CreateAnonymousAccessToken: a user-less visitor of one device
    BINDING = "binding"  # CreateBinding: access through the binding, for subscribeDevice


_PREFIX = {
    TokenKind.USER: "usr",
    TokenKind.DEVICE: "dev",
    TokenKind.ANONYMOUS: "anon",
    TokenKind.BINDING: "bind",
}


async def issue_token(
    conn: AsyncConnection,
    *,
    access_id: str,
    kind: TokenKind,
    now: int,
    expires_at: int,
    tid: str | None = None,
    terminal_id: str | None = None,
) -> str:
    """Create a token and store its hash; the plain token is returned once, here."""
    token = ids.new_token(_PREFIX[kind])
    await conn.execute(
        insert(access_tokens).values(
            token_hash=hash_token(token),
            access_id=access_id,
            kind=kind.value,
            tid=tid,
            terminal_id=terminal_id,
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
        )
    )
    return token


async def find_token(conn: AsyncConnection, token: str, *, now: int) -> AnyRow | None:
    """The live (unrevoked, unexpired) token record for ``token``, or ``None``."""
    if not looks_like_token(token):
        return None
    row = (
        await conn.execute(
            select(access_tokens).where(access_tokens.c.token_hash == hash_token(token))
        )
    ).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    return row


async def revoke_tokens(conn: AsyncConnection, *where: ColumnElement[bool], now: int) -> None:
    """Revoke every live token matching ``where``."""
    await conn.execute(
        update(access_tokens)
        .where(and_(*where), access_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def purge_tokens(conn: AsyncConnection, *, now: int) -> int:
    """Delete tokens that expired or were revoked more than a day ago; return how many."""
    cutoff = now - KEEP_DEAD_TOKENS
    result = await conn.execute(
        delete(access_tokens).where(
            (access_tokens.c.expires_at < cutoff) | (access_tokens.c.revoked_at < cutoff)
        )
    )
    return int(result.rowcount)


async def device_role(
    conn: AsyncConnection, access_id: str, tid: str, token: AnyRow | None = None
) -> str:
    """What ``access_id`` may be to device ``tid``: ``owner`` or ``guest`` (a binding), or
    ``visitor`` (``token`` is a device token or an anonymous token for that device).

    Raises 8002 when there is no such device or it belongs to another vendor than the
    user's (another vendor's device does not exist for them), 8003 when there is no
    relation. Without ``token`` only bindings count (a link session holds its tokens'
    grants itself); a binding token counts for its own device only."""
    device_vendor = await conn.scalar(select(devices.c.vendor_id).where(devices.c.tid == tid))
    user_vendor = await conn.scalar(
        select(app_users.c.vendor_id).where(app_users.c.access_id == access_id)
    )
    if device_vendor is None or device_vendor != user_vendor:
        raise IVError.of(ErrorCode.IVASrvErr_dst_notexsit, f"no device {tid!r}")
    by_binding = token is None or (
        token.kind in (TokenKind.USER.value, TokenKind.ANONYMOUS.value) and not token.tid
    )
    if by_binding or (token is not None and token.tid == tid and token.kind == TokenKind.BINDING):
        role = await conn.scalar(
            select(bindings.c.role).where(
                and_(bindings.c.tid == tid, bindings.c.access_id == access_id)
            )
        )
        if role is not None:
            return str(role)
    elif token is not None and token.tid == tid:
        return "visitor"
    raise IVError.of(
        ErrorCode.IVASrvErr_dst_error_relation,
        f"no binding or device token for {tid}; bind it or subscribe with a token",
    )
