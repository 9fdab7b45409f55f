"""Access tokens: issue, look up and revoke. Tokens are stored only as SHA-256 hashes."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ColumnElement, and_, delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from iotvideo.cloud import ids
from iotvideo.cloud.db.models import AccessToken
from iotvideo.protocol.tokens import hash_token, looks_like_token

__all__ = ["NEVER", "TokenKind", "find_token", "issue_token", "purge_expired", "revoke_tokens"]

#: ``expires_at`` of tokens that live as long as what they grant (binding tokens).
NEVER = (1 << 62) - 1


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
    session: AsyncSession,
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
    session.add(
        AccessToken(
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


async def find_token(session: AsyncSession, token: str, *, now: int) -> AccessToken | None:
    """The live (unrevoked, unexpired) token record for ``token``, or ``None``."""
    if not looks_like_token(token):
        return None
    row = await session.get(AccessToken, hash_token(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    return row


async def revoke_tokens(session: AsyncSession, *where: ColumnElement[bool], now: int) -> None:
    """Revoke every live token matching ``where``."""
    await session.execute(
        update(AccessToken)
        .where(and_(*where), AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def purge_expired(session: AsyncSession, *where: ColumnElement[bool], now: int) -> None:
    """Delete tokens matching ``where`` that expired or were revoked a day ago or more."""
    await session.execute(
        delete(AccessToken).where(
            and_(*where),
            (AccessToken.expires_at < now - 86400) | (AccessToken.revoked_at < now - 86400),
        )
    )
