"""Access tokens: CreateUsrToken, CreateDevToken, CreateAnonymousAccessToken."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import insert, select

from iotvideo.cloud import ids
from iotvideo.cloud.access import TokenKind, find_token, issue_token, revoke_tokens
from iotvideo.cloud.db.tables import AnyRow, access_tokens, app_users, terminals
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import Code, VendorError, not_found
from iotvideo.cloud.vendor.params import PRINTABLE, Id, IdList, Opaque, Params, TtlMinutes

__all__ = ["register"]

#: CreateAnonymousAccessToken allows 24 hours at most.
ANONYMOUS_MAX_TTL_MINUTES = 1440


class CreateUsrTokenParams(Params):
    AccessId: Id
    UniqueId: Annotated[str, Field(min_length=1, max_length=128), PRINTABLE]
    TtlMinutes: TtlMinutes
    OldAccessToken: Opaque | None = None


class CreateDevTokenParams(Params):
    AccessId: Id
    Tids: IdList
    TtlMinutes: TtlMinutes


class CreateAnonymousAccessTokenParams(Params):
    TtlMinutes: Annotated[int, Field(ge=1, le=ANONYMOUS_MAX_TTL_MINUTES)]
    Tid: Id | None = None
    OldAccessToken: Opaque | None = None


async def _renewing(ctx: ActionContext, token: str, kind: TokenKind) -> AnyRow:
    """Revoke the live token being renewed, which must be of ``kind`` and of this vendor."""
    row = await find_token(ctx.conn, token, now=ctx.now)
    vendor = None
    if row is not None and row.kind == kind:
        vendor = await ctx.conn.scalar(
            select(app_users.c.vendor_id).where(app_users.c.access_id == row.access_id)
        )
    if row is None or vendor != ctx.vendor_id:
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE,
            "OldAccessToken is unknown, expired or revoked; create a new token instead.",
        )
    return row


async def _revoke(ctx: ActionContext, row: AnyRow) -> None:
    await revoke_tokens(ctx.conn, access_tokens.c.token_hash == row.token_hash, now=ctx.now)
    ctx.notify_user(row.access_id)


async def create_usr_token(ctx: ActionContext, p: CreateUsrTokenParams) -> dict[str, Any]:
    """A login token for one terminal (UniqueId) of a user; renewal revokes the old one."""
    # The user and the terminal in one round trip.
    found = (
        await ctx.conn.execute(
            select(app_users.c.access_id, terminals.c.terminal_id)
            .outerjoin(
                terminals,
                (terminals.c.access_id == app_users.c.access_id)
                & (terminals.c.unique_id == p.UniqueId),
            )
            .where(app_users.c.access_id == p.AccessId, app_users.c.vendor_id == ctx.vendor_id)
        )
    ).first()
    if found is None:
        raise not_found("AccessId", p.AccessId)
    if p.OldAccessToken is not None:
        old = await _renewing(ctx, p.OldAccessToken, TokenKind.USER)
        if old.access_id != p.AccessId:
            raise VendorError(
                Code.UNAUTHORIZED_OPERATION, "OldAccessToken belongs to another AccessId."
            )
        await _revoke(ctx, old)
    terminal_id = found.terminal_id
    if terminal_id is None:
        terminal_id = ids.terminal_id()
        await ctx.conn.execute(
            insert(terminals).values(
                terminal_id=terminal_id,
                access_id=p.AccessId,
                unique_id=p.UniqueId,
                created_at=ctx.now,
            )
        )
    expires = ctx.now + p.TtlMinutes * 60
    token = await issue_token(
        ctx.conn,
        access_id=p.AccessId,
        kind=TokenKind.USER,
        now=ctx.now,
        expires_at=expires,
        terminal_id=terminal_id,
    )
    return {
        "AccessId": p.AccessId,
        "AccessToken": token,
        "ExpireTime": expires,
        "TerminalId": terminal_id,
    }


async def create_dev_token(ctx: ActionContext, p: CreateDevTokenParams) -> dict[str, Any]:
    """Temporary access to devices without a binding, one token per device."""
    user = await ctx.user(p.AccessId)
    found = await ctx.devices(p.Tids)
    expires = ctx.now + p.TtlMinutes * 60
    data = []
    for device in found:
        token = await issue_token(
            ctx.conn,
            access_id=user.access_id,
            kind=TokenKind.DEVICE,
            now=ctx.now,
            expires_at=expires,
            tid=device.tid,
        )
        data.append(
            {
                "AccessId": user.access_id,
                "Tid": device.tid,
                "AccessToken": token,
                "ExpireTime": expires,
            }
        )
    return {"Data": data}


async def create_anonymous_access_token(
    ctx: ActionContext, p: CreateAnonymousAccessTokenParams
) -> dict[str, Any]:
    """A visitor's token for one device: create with Tid, renew with OldAccessToken."""
    if p.OldAccessToken is not None:
        old = await _renewing(ctx, p.OldAccessToken, TokenKind.ANONYMOUS)
        if p.Tid is not None and p.Tid != old.tid:
            raise VendorError(
                Code.INVALID_PARAMETER_VALUE, "Tid differs from the device of OldAccessToken."
            )
        await _revoke(ctx, old)
        access_id, tid = old.access_id, old.tid
    elif p.Tid is not None:
        tid = (await ctx.device(p.Tid)).tid
        access_id = ids.access_id()
        await ctx.conn.execute(
            insert(app_users).values(
                access_id=access_id,
                vendor_id=ctx.vendor_id,
                cunion_id=None,
                mobile="",
                anonymous=True,
                created_at=ctx.now,
            )
        )
    else:
        raise VendorError(
            Code.MISSING_PARAMETER, "Give Tid to create a token or OldAccessToken to renew one."
        )
    expires = ctx.now + p.TtlMinutes * 60
    token = await issue_token(
        ctx.conn,
        access_id=access_id,
        kind=TokenKind.ANONYMOUS,
        now=ctx.now,
        expires_at=expires,
        tid=tid,
    )
    return {"AccessId": access_id, "AccessToken": token, "ExpireTime": expires}


def register(api: VendorApi) -> None:
    api.add("CreateUsrToken", CreateUsrTokenParams, create_usr_token)
    api.add("CreateDevToken", CreateDevTokenParams, create_dev_token)
    api.add(
        "CreateAnonymousAccessToken",
        CreateAnonymousAccessTokenParams,
        create_anonymous_access_token,
    )
