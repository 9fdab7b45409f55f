"""Bindings: CreateBinding, DeleteBinding, DescribeBindDev, DescribeBindUsr.

A device has at most one owner and any number of guests. Binding gives the user access to
the device through the relation itself; the AccessToken CreateBinding returns is what the
app passes to ``subscribe_device``. It lives as long as the binding.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import delete, insert, select, update

from iotvideo.cloud.access import NEVER, TokenKind, issue_token, revoke_tokens
from iotvideo.cloud.db.tables import access_tokens, bindings, devices, products
from iotvideo.cloud.provisioning import consume_bind_token
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import Code, VendorError, not_found
from iotvideo.cloud.vendor.params import Id, Opaque, Params, Short
from iotvideo.protocol.errors import ErrorCode

__all__ = ["register"]

Role = Literal["owner", "guest"]


class CreateBindingParams(Params):
    AccessId: Id
    Tid: Id
    Role: Role
    ForceBind: bool = False
    Nick: Short = ""
    BindToken: Opaque | None = None


class DeleteBindingParams(Params):
    AccessId: Id
    Tid: Id
    Role: Role


class DescribeBindDevParams(Params):
    AccessId: Id


class DescribeBindUsrParams(Params):
    Tid: Id
    AccessId: Id


async def _owner(ctx: ActionContext, tid: str) -> str | None:
    owner: str | None = await ctx.conn.scalar(
        select(bindings.c.access_id).where(bindings.c.tid == tid, bindings.c.role == "owner")
    )
    return owner


async def _revoke_device_access(ctx: ActionContext, access_id: str, tid: str) -> None:
    """Revoke what a user held for one device: binding and temporary device tokens."""
    await revoke_tokens(
        ctx.conn,
        access_tokens.c.access_id == access_id,
        access_tokens.c.tid == tid,
        access_tokens.c.kind.in_([TokenKind.BINDING.value, TokenKind.DEVICE.value]),
        now=ctx.now,
    )


async def _unbind(ctx: ActionContext, access_id: str, tid: str) -> None:
    await ctx.conn.execute(
        delete(bindings).where(bindings.c.access_id == access_id, bindings.c.tid == tid)
    )
    await _revoke_device_access(ctx, access_id, tid)
    ctx.notify_user(access_id)


async def create_binding(ctx: ActionContext, p: CreateBindingParams) -> dict[str, Any]:
    user = await ctx.user(p.AccessId)
    device = await ctx.device(p.Tid)
    if user.anonymous:
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE,
            f"AccessId {user.access_id!r} is an anonymous visitor; register the user with "
            "CreateAppUsr and bind that AccessId.",
        )
    if p.BindToken is not None and not await consume_bind_token(
        ctx.conn, p.BindToken, access_id=user.access_id, tid=device.tid, now=ctx.now
    ):
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE,
            "BindToken is unknown, expired, already used, another user's, or was not "
            "presented by this device; provision the device again with a new token.",
        )
    if p.Role == "owner":
        owner = await _owner(ctx, device.tid)
        if owner is not None and owner != user.access_id:
            if not p.ForceBind:
                raise VendorError(
                    Code.RESOURCE_IN_USE,
                    f"Device {device.tid!r} already has an owner "
                    f"({ErrorCode.IVASrvErr_binderror_dev_has_bind_other.name}); "
                    "pass ForceBind=true to replace the owner.",
                )
            await _unbind(ctx, owner, device.tid)
    changed = await ctx.conn.execute(
        update(bindings)
        .where(bindings.c.access_id == user.access_id, bindings.c.tid == device.tid)
        .values(role=p.Role, **({"nick": p.Nick} if p.Nick else {}))
    )
    if changed.rowcount == 0:
        await ctx.conn.execute(
            insert(bindings).values(
                access_id=user.access_id,
                tid=device.tid,
                role=p.Role,
                nick=p.Nick,
                created_at=ctx.now,
            )
        )
    ctx.notify_user(user.access_id)
    if p.Role == "owner":
        ctx.tell_device(device.tid, "owner", {"bindable": False})
    token = await issue_token(
        ctx.conn,
        access_id=user.access_id,
        kind=TokenKind.BINDING,
        now=ctx.now,
        expires_at=NEVER,
        tid=device.tid,
    )
    return {"AccessToken": token}


async def delete_binding(ctx: ActionContext, p: DeleteBindingParams) -> dict[str, Any]:
    device = await ctx.device(p.Tid)  # the binding's device must be this vendor's
    role = await ctx.conn.scalar(
        select(bindings.c.role).where(
            bindings.c.access_id == p.AccessId, bindings.c.tid == device.tid
        )
    )
    if role != p.Role:
        raise not_found(f"{p.Role} binding of AccessId", f"{p.AccessId} to Tid {p.Tid}")
    await _unbind(ctx, p.AccessId, device.tid)
    if p.Role == "owner":
        ctx.tell_device(device.tid, "owner", {"bindable": True})
    return {}


async def describe_bind_dev(ctx: ActionContext, p: DescribeBindDevParams) -> dict[str, Any]:
    user = await ctx.user(p.AccessId)
    rows = await ctx.conn.execute(
        select(
            bindings.c.tid,
            bindings.c.nick,
            bindings.c.role,
            devices.c.device_name,
            products.c.product_model,
        )
        .join(devices, devices.c.tid == bindings.c.tid)
        .join(products, products.c.product_id == devices.c.product_id)
        .where(bindings.c.access_id == user.access_id)
        .order_by(bindings.c.created_at, bindings.c.tid)
    )
    data = [
        {
            "Tid": r.tid,
            "DeviceName": r.nick or r.device_name,
            "DeviceModel": r.product_model,
            "Role": r.role,
        }
        for r in rows
    ]
    return {"Data": data}


async def describe_bind_usr(ctx: ActionContext, p: DescribeBindUsrParams) -> dict[str, Any]:
    """The users bound to a device; only its owner may ask."""
    device = await ctx.device(p.Tid)
    if await _owner(ctx, device.tid) != p.AccessId:
        raise VendorError(
            Code.UNAUTHORIZED_OPERATION,
            f"AccessId {p.AccessId!r} is not the owner of device {device.tid!r}; "
            "only the owner may list its users.",
        )
    rows = await ctx.conn.execute(
        select(bindings.c.access_id, bindings.c.role)
        .where(bindings.c.tid == device.tid)
        .order_by(bindings.c.created_at, bindings.c.access_id)
    )
    return {"Data": [{"AccessId": r.access_id, "Role": r.role} for r in rows]}


def register(api: VendorApi) -> None:
    api.add("CreateBinding", CreateBindingParams, create_binding)
    api.add("DeleteBinding", DeleteBindingParams, delete_binding)
    api.add("DescribeBindDev", DescribeBindDevParams, describe_bind_dev, writes=False)
    api.add("DescribeBindUsr", DescribeBindUsrParams, describe_bind_usr, writes=False)
