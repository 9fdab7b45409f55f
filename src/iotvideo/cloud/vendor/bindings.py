"""Bindings: CreateBinding, DeleteBinding, DescribeBindDev, DescribeBindUsr.

A device has at most one owner and any number of guests. Binding gives the user access to
the device through the relation itself; the AccessToken CreateBinding returns is what the
app passes to ``subscribe_device``. It lives as long as the binding.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select

from iotvideo.cloud.access import NEVER, TokenKind, issue_token, revoke_tokens
from iotvideo.cloud.db.models import AccessToken, Binding, Device, Product
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


async def _owner(ctx: ActionContext, tid: str) -> Binding | None:
    owner: Binding | None = await ctx.session.scalar(
        select(Binding).where(Binding.tid == tid, Binding.role == "owner")
    )
    return owner


async def _revoke_device_access(ctx: ActionContext, access_id: str, tid: str) -> None:
    """Revoke what a user held for one device: binding and temporary device tokens."""
    await revoke_tokens(
        ctx.session,
        AccessToken.access_id == access_id,
        AccessToken.tid == tid,
        AccessToken.kind.in_([TokenKind.BINDING.value, TokenKind.DEVICE.value]),
        now=ctx.now,
    )


async def create_binding(ctx: ActionContext, p: CreateBindingParams) -> dict[str, Any]:
    user = await ctx.user(p.AccessId)
    device = await ctx.device(p.Tid)
    if user.anonymous:
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE,
            f"AccessId {user.access_id!r} is an anonymous visitor; register the user with "
            "CreateAppUsr and bind that AccessId.",
        )
    if p.BindToken is not None:
        # Bind tokens are issued to apps and presented by devices while provisioning;
        # none that this cloud issued matches, so refuse rather than ignore it.
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE,
            "BindToken is unknown, expired or was not presented by this device.",
        )
    if p.Role == "owner":
        owner = await _owner(ctx, device.tid)
        if owner is not None and owner.access_id != user.access_id:
            if not p.ForceBind:
                raise VendorError(
                    Code.RESOURCE_IN_USE,
                    f"Device {device.tid!r} already has an owner "
                    f"({ErrorCode.IVASrvErr_binderror_dev_has_bind_other.name}); "
                    "pass ForceBind=true to replace the owner.",
                )
            await ctx.session.delete(owner)
            await _revoke_device_access(ctx, owner.access_id, device.tid)
            await ctx.session.flush()
    binding = await ctx.session.get(Binding, (user.access_id, device.tid))
    if binding is None:
        binding = Binding(
            access_id=user.access_id, tid=device.tid, role=p.Role, nick=p.Nick, created_at=ctx.now
        )
        ctx.session.add(binding)
    else:
        binding.role = p.Role
        if p.Nick:
            binding.nick = p.Nick
    await ctx.session.flush()
    token = await issue_token(
        ctx.session,
        access_id=user.access_id,
        kind=TokenKind.BINDING,
        now=ctx.now,
        expires_at=NEVER,
        tid=device.tid,
    )
    return {"AccessToken": token}


async def delete_binding(ctx: ActionContext, p: DeleteBindingParams) -> dict[str, Any]:
    binding = await ctx.session.get(Binding, (p.AccessId, p.Tid))
    if binding is None or binding.role != p.Role:
        raise not_found(f"{p.Role} binding of AccessId", f"{p.AccessId} to Tid {p.Tid}")
    await ctx.device(p.Tid)  # the binding's device must be this vendor's
    await ctx.session.delete(binding)
    await _revoke_device_access(ctx, p.AccessId, p.Tid)
    return {}


async def describe_bind_dev(ctx: ActionContext, p: DescribeBindDevParams) -> dict[str, Any]:
    user = await ctx.user(p.AccessId)
    rows = await ctx.session.execute(
        select(Binding, Device.device_name, Product.product_model)
        .join(Device, Device.tid == Binding.tid)
        .join(Product, Product.product_id == Device.product_id)
        .where(Binding.access_id == user.access_id)
        .order_by(Binding.created_at, Binding.tid)
    )
    data = [
        {"Tid": b.tid, "DeviceName": b.nick or name, "DeviceModel": model, "Role": b.role}
        for b, name, model in rows
    ]
    return {"Data": data}


async def describe_bind_usr(ctx: ActionContext, p: DescribeBindUsrParams) -> dict[str, Any]:
    """The users bound to a device; only its owner may ask."""
    device = await ctx.device(p.Tid)
    owner = await _owner(ctx, device.tid)
    if owner is None or owner.access_id != p.AccessId:
        raise VendorError(
            Code.UNAUTHORIZED_OPERATION,
            f"AccessId {p.AccessId!r} is not the owner of device {device.tid!r}; "
            "only the owner may list its users.",
        )
    rows = await ctx.session.scalars(
        select(Binding).where(Binding.tid == device.tid).order_by(Binding.created_at)
    )
    return {"Data": [{"AccessId": b.access_id, "Role": b.role} for b in rows]}


def register(api: VendorApi) -> None:
    api.add("CreateBinding", CreateBindingParams, create_binding)
    api.add("DeleteBinding", DeleteBindingParams, delete_binding)
    api.add("DescribeBindDev", DescribeBindDevParams, describe_bind_dev)
    api.add("DescribeBindUsr", DescribeBindUsrParams, describe_bind_usr)
