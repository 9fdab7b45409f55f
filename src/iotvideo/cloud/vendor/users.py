"""End users: CreateAppUsr, DeleteAppUsr, DescribeRegistrationStatus."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import delete, insert, select, update

from iotvideo.cloud import ids
from iotvideo.cloud.db.tables import app_users
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


async def create_app_usr(ctx: ActionContext, p: CreateAppUsrParams) -> dict[str, Any]:
    """Register a user once per CunionId; asking again returns the same AccessId."""
    existing = await ctx.conn.scalar(
        select(app_users.c.access_id).where(
            app_users.c.vendor_id == ctx.vendor_id, app_users.c.cunion_id == p.CunionId
        )
    )
    if existing is not None:
        if p.Mobile:
            await ctx.conn.execute(
                update(app_users).where(app_users.c.access_id == existing).values(mobile=p.Mobile)
            )
        return {"CunionId": p.CunionId, "AccessId": existing, "NewRegist": False}
    # A concurrent registration of the same CunionId makes this insert fail on the unique
    # index; the request is then retried and finds that user.
    access_id = ids.access_id()
    await ctx.conn.execute(
        insert(app_users).values(
            access_id=access_id,
            vendor_id=ctx.vendor_id,
            cunion_id=p.CunionId,
            mobile=p.Mobile,
            anonymous=False,
            created_at=ctx.now,
        )
    )
    return {"CunionId": p.CunionId, "AccessId": access_id, "NewRegist": True}


async def delete_app_usr(ctx: ActionContext, p: AccessIdParams) -> dict[str, Any]:
    """Remove the user with its bindings, terminals and tokens (they cascade)."""
    user = await ctx.user(p.AccessId)
    await ctx.conn.execute(delete(app_users).where(app_users.c.access_id == user.access_id))
    ctx.notify_user(user.access_id)
    return {}


async def describe_registration_status(
    ctx: ActionContext, p: DescribeRegistrationStatusParams
) -> dict[str, Any]:
    wanted = list(dict.fromkeys(p.CunionIds))
    found = set(
        await ctx.conn.scalars(
            select(app_users.c.cunion_id).where(
                app_users.c.vendor_id == ctx.vendor_id, app_users.c.cunion_id.in_(wanted)
            )
        )
    )
    return {"Data": [{"CunionId": c, "IsRegisted": c in found} for c in wanted]}


def register(api: VendorApi) -> None:
    api.add("CreateAppUsr", CreateAppUsrParams, create_app_usr)
    api.add("DeleteAppUsr", AccessIdParams, delete_app_usr)
    api.add(
        "DescribeRegistrationStatus",
        DescribeRegistrationStatusParams,
        describe_registration_status,
        writes=False,
    )
