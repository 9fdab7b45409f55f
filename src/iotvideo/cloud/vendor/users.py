"""End users: CreateAppUsr, DeleteAppUsr, DescribeRegistrationStatus."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import select

from iotvideo.cloud import ids
from iotvideo.cloud.db.models import AppUser
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.params import PRINTABLE, Id, Params

__all__ = ["register"]

CunionId = Annotated[str, Field(min_length=1, max_length=128), PRINTABLE]


class CreateAppUsrParams(Params):
    CunionId: CunionId
    Mobile: Annotated[str, Field(max_length=32, pattern=r"^[0-9+\- ]*$")] = ""


class AccessIdParams(Params):
    AccessId: Id


class DescribeRegistrationStatusParams(Params):
    CunionIds: Annotated[list[CunionId], Field(min_length=1, max_length=100)]


async def _find(ctx: ActionContext, cunion_id: str) -> AppUser | None:
    found: AppUser | None = await ctx.session.scalar(
        select(AppUser).where(AppUser.vendor_id == ctx.vendor_id, AppUser.cunion_id == cunion_id)
    )
    return found


async def create_app_usr(ctx: ActionContext, p: CreateAppUsrParams) -> dict[str, Any]:
    """Register a user once per CunionId; asking again returns the same AccessId."""
    user = await _find(ctx, p.CunionId)
    new = user is None
    if user is None:
        user = AppUser(
            access_id=ids.access_id(),
            vendor_id=ctx.vendor_id,
            cunion_id=p.CunionId,
            mobile=p.Mobile,
            anonymous=False,
            created_at=ctx.now,
        )
        ctx.session.add(user)
        # Flush now: a concurrent registration of the same CunionId fails here and the
        # request is retried, finding this user.
        await ctx.session.flush()
    elif p.Mobile:
        user.mobile = p.Mobile
    return {"CunionId": p.CunionId, "AccessId": user.access_id, "NewRegist": new}


async def delete_app_usr(ctx: ActionContext, p: AccessIdParams) -> dict[str, Any]:
    """Remove the user with its bindings, terminals and tokens (they cascade)."""
    await ctx.session.delete(await ctx.user(p.AccessId))
    return {}


async def describe_registration_status(
    ctx: ActionContext, p: DescribeRegistrationStatusParams
) -> dict[str, Any]:
    wanted = list(dict.fromkeys(p.CunionIds))
    found = set(
        await ctx.session.scalars(
            select(AppUser.cunion_id).where(
                AppUser.vendor_id == ctx.vendor_id, AppUser.cunion_id.in_(wanted)
            )
        )
    )
    return {"Data": [{"CunionId": c, "IsRegisted": c in found} for c in wanted]}


def register(api: VendorApi) -> None:
    api.add("CreateAppUsr", CreateAppUsrParams, create_app_usr)
    api.add("DeleteAppUsr", AccessIdParams, delete_app_usr)
    api.add(
        "DescribeRegistrationStatus", DescribeRegistrationStatusParams, describe_registration_status
    )
