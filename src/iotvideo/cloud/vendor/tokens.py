"""Access tokens: CreateUsrToken, CreateDevToken, CreateAnonymousAccessToken."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import select

from iotvideo.cloud import ids
from iotvideo.cloud.access import TokenKind, find_token, issue_token, purge_expired
from iotvideo.cloud.db.models import AccessToken, AppUser, Terminal
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import Code, VendorError
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


async def _old_token(ctx: ActionContext, token: str, kind: TokenKind) -> AccessToken:
    """The live token being renewed, which must be of ``kind`` and of this vendor."""
    row = await find_token(ctx.session, token, now=ctx.now)
    owner = await ctx.session.get(AppUser, row.access_id) if row else None
    if row is None or owner is None or owner.vendor_id != ctx.vendor_id or row.kind != kind:
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE,
            "OldAccessToken is unknown, expired or revoked; create a new token instead.",
        )
    return row


async def _terminal(ctx: ActionContext, access_id: str, unique_id: str) -> Terminal:
    terminal: Terminal | None = await ctx.session.scalar(
        select(Terminal).where(Terminal.access_id == access_id, Terminal.unique_id == unique_id)
    )
    if terminal is None:
        terminal = Terminal(
            terminal_id=ids.terminal_id(),
            access_id=access_id,
            unique_id=unique_id,
            created_at=ctx.now,
        )
        ctx.session.add(terminal)
        await ctx.session.flush()
    return terminal


async def create_usr_token(ctx: ActionContext, p: CreateUsrTokenParams) -> dict[str, Any]:
    """A login token for one terminal (UniqueId) of a user; renewal revokes the old one."""
    user = await ctx.user(p.AccessId)
    if p.OldAccessToken is not None:
        old = await _old_token(ctx, p.OldAccessToken, TokenKind.USER)
        if old.access_id != user.access_id:
            raise VendorError(
                Code.UNAUTHORIZED_OPERATION, "OldAccessToken belongs to another AccessId."
            )
        old.revoked_at = ctx.now
    terminal = await _terminal(ctx, user.access_id, p.UniqueId)
    await purge_expired(ctx.session, AccessToken.terminal_id == terminal.terminal_id, now=ctx.now)
    expires = ctx.now + p.TtlMinutes * 60
    token = await issue_token(
        ctx.session,
        access_id=user.access_id,
        kind=TokenKind.USER,
        now=ctx.now,
        expires_at=expires,
        terminal_id=terminal.terminal_id,
    )
    return {
        "AccessId": user.access_id,
        "AccessToken": token,
        "ExpireTime": expires,
        "TerminalId": terminal.terminal_id,
    }


async def create_dev_token(ctx: ActionContext, p: CreateDevTokenParams) -> dict[str, Any]:
    """Temporary access to devices without a binding, one token per device."""
    user = await ctx.user(p.AccessId)
    devices = await ctx.devices(p.Tids)
    expires = ctx.now + p.TtlMinutes * 60
    data = []
    for device in devices:
        token = await issue_token(
            ctx.session,
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
        old = await _old_token(ctx, p.OldAccessToken, TokenKind.ANONYMOUS)
        if p.Tid is not None and p.Tid != old.tid:
            raise VendorError(
                Code.INVALID_PARAMETER_VALUE, "Tid differs from the device of OldAccessToken."
            )
        old.revoked_at = ctx.now
        access_id, tid = old.access_id, old.tid
    elif p.Tid is not None:
        tid = (await ctx.device(p.Tid)).tid
        access_id = ids.access_id()
        ctx.session.add(
            AppUser(
                access_id=access_id,
                vendor_id=ctx.vendor_id,
                cunion_id=None,
                mobile="",
                anonymous=True,
                created_at=ctx.now,
            )
        )
        await ctx.session.flush()
    else:
        raise VendorError(
            Code.MISSING_PARAMETER, "Give Tid to create a token or OldAccessToken to renew one."
        )
    expires = ctx.now + p.TtlMinutes * 60
    token = await issue_token(
        ctx.session,
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
