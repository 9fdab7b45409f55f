"""Access tokens: issue, look up and revoke. Tokens are stored only as SHA-256 hashes."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ColumnElement, and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud import ids
from iotvideo.cloud.db.tables import AnyRow, access_tokens
from iotvideo.protocol.tokens import hash_token, looks_like_token

__all__ = ["NEVER", "TokenKind", "find_token", "issue_token", "purge_tokens", "revoke_tokens"]

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
