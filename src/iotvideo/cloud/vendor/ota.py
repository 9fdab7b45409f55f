"""Firmware: UploadOtaVersion, DescribeOtaVersions, RunOtaVersion, RunTestOtaVersion,
DisableOtaVersion, ModifyVerContent, DescribePubVersions, DeleteOtaVersion, UpgradeDevice.
Who is offered what: :mod:`iotvideo.cloud.ota`."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from sqlalchemy import and_, delete, func, insert, select, update

from iotvideo.cloud.db.tables import AnyRow, devices, ota_versions
from iotvideo.cloud.firmware import file_digest
from iotvideo.cloud.ota import DISABLED, OFFICIAL, TEST, describe, parse_version
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import Code, VendorError, not_found
from iotvideo.cloud.vendor.params import PRINTABLE, Count, Id, Params, Short
from iotvideo.cloud.vendor.params import Offset as OffsetValue
from iotvideo.cloud.vendor.products import ProductIdParams

__all__ = ["register"]


def _version(value: str) -> str:
    parse_version(value)
    return value


def _md5(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{32}", value):
        raise ValueError("Md5 is 32 hexadecimal digits")
    return value.lower()


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("VersionUrl must be an http:// or https:// URL the devices can reach")
    return value


Version = Annotated[str, Field(max_length=32), AfterValidator(_version)]
Text = Annotated[str, Field(max_length=256), PRINTABLE]


class ContentsParams(Params):
    En: Annotated[str, Field(max_length=2048)] = ""
    Cn: Annotated[str, Field(max_length=2048)] = ""
    Tc: Annotated[str, Field(max_length=2048)] = ""
    Default: Annotated[str, Field(max_length=2048)] = ""


class UploadOtaVersionParams(Params):
    ProductId: Id
    OtaVersion: Version
    VersionUrl: Annotated[str, Field(max_length=1024), AfterValidator(_url)]
    FileSize: Annotated[int, Field(ge=1, le=1 << 32)]
    Md5: Annotated[str, AfterValidator(_md5)]
    Operator: Short = ""
    Remark: Text = ""
    Contents: ContentsParams | None = None


class DescribeOtaVersionsParams(Params):
    Offset: OffsetValue = 0
    Limit: Count = 20
    ProductId: Id | None = None
    OtaVersion: Version | None = None
    PubStatus: Annotated[int, Field(ge=1, le=4)] | None = None


class RunOtaVersionParams(Params):
    ProductId: Id
    OtaVersion: Version
    GrayValue: Annotated[int, Field(ge=0, le=100)] = 100
    OldVersions: Annotated[list[Version], Field(max_length=100, default_factory=list)]
    Operator: Short = ""
    Remark: Text = ""
    Contents: ContentsParams | None = None


class RunTestOtaVersionParams(Params):
    ProductId: Id
    OtaVersion: Version
    Tids: Annotated[list[Id], Field(min_length=1, max_length=100)]
    Operator: Short = ""
    Remark: Text = ""


class DeleteOtaVersionParams(Params):
    ProductId: Id
    OtaVersion: Version
    Operator: Short = ""


class ModifyVerContentParams(Params):
    ProductId: Id
    OtaVersion: Version
    Operator: Short = ""
    Remark: Text | None = None
    Contents: ContentsParams | None = None


class UpgradeDeviceParams(Params):
    Tid: Id
    OtaVersion: Version
    UpgradeNow: bool = True


async def _release(ctx: ActionContext, product_id: str, version: str) -> AnyRow:
    row = (
        await ctx.conn.execute(
            select(ota_versions).where(
                ota_versions.c.product_id == product_id,
                ota_versions.c.ota_version == version,
                ota_versions.c.vendor_id == ctx.vendor_id,
            )
        )
    ).first()
    if row is None:
        raise not_found("OtaVersion", f"{product_id}/{version}")
    return row


async def _check_own_file(ctx: ActionContext, p: UploadOtaVersionParams) -> None:
    """A VersionUrl on this cloud's own store (CreateUploadPath's, query dropped) must name
    an uploaded file of FileSize bytes with that MD5: a typo is caught now, not when every
    device fails its download."""
    prefix = f"{ctx.public_base()}/firmware/"
    url = p.VersionUrl.split("?", 1)[0]
    if ctx.link is None or not url.startswith(prefix):
        return
    path = ctx.link.settings.data / "firmware" / url.removeprefix(prefix)
    if "/" in url.removeprefix(prefix) or not await asyncio.to_thread(path.is_file):
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE,
            "VersionUrl names no file uploaded to this cloud; PUT it to CreateUploadPath's URL "
            "first.",
        )
    size = (await asyncio.to_thread(path.stat)).st_size
    if size != p.FileSize:
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE, f"FileSize is {p.FileSize}; the uploaded file has {size}."
        )
    if await asyncio.to_thread(file_digest, path) != p.Md5:
        raise VendorError(Code.INVALID_PARAMETER_VALUE, "Md5 is not the MD5 of the uploaded file.")


async def upload_ota_version(ctx: ActionContext, p: UploadOtaVersionParams) -> dict[str, Any]:
    await ctx.product(p.ProductId)
    exists = await ctx.conn.scalar(
        select(func.count()).where(
            ota_versions.c.product_id == p.ProductId, ota_versions.c.ota_version == p.OtaVersion
        )
    )
    if exists:
        raise VendorError(
            Code.RESOURCE_IN_USE,
            f"version {p.OtaVersion} of {p.ProductId} exists; delete it first to replace it.",
        )
    await _check_own_file(ctx, p)
    await ctx.conn.execute(
        insert(ota_versions).values(
            product_id=p.ProductId,
            ota_version=p.OtaVersion,
            vendor_id=ctx.vendor_id,
            version_url=p.VersionUrl,
            file_size=p.FileSize,
            md5=p.Md5,
            operator=p.Operator,
            remark=p.Remark,
            contents=p.Contents.model_dump() if p.Contents else {},
            pub_status=1,
            upload_time=ctx.now,
            update_time=ctx.now,
        )
    )
    return {}


async def describe_ota_versions(ctx: ActionContext, p: DescribeOtaVersionsParams) -> dict[str, Any]:
    where = [ota_versions.c.vendor_id == ctx.vendor_id]
    if p.ProductId:
        where.append(ota_versions.c.product_id == p.ProductId)
    if p.OtaVersion:
        where.append(ota_versions.c.ota_version == p.OtaVersion)
    if p.PubStatus:
        where.append(ota_versions.c.pub_status == p.PubStatus)
    total = await ctx.conn.scalar(select(func.count()).select_from(ota_versions).where(*where))
    month_start = ctx.now - ctx.now % 86_400 - 29 * 86_400
    on_version = and_(
        devices.c.product_id == ota_versions.c.product_id,
        devices.c.ota_version == ota_versions.c.ota_version,
    )
    active = select(func.count()).where(on_version).scalar_subquery()
    online = select(func.count()).where(on_version, devices.c.online > 0).scalar_subquery()
    alive = (
        select(func.count())
        .where(on_version, devices.c.last_online_time >= month_start)
        .scalar_subquery()
    )
    rows = await ctx.conn.execute(
        select(ota_versions, active.label("active"), online.label("online_n"), alive.label("alive"))
        .where(*where)
        .order_by(ota_versions.c.upload_time.desc(), ota_versions.c.ota_version)
        .offset(p.Offset)
        .limit(p.Limit)
    )
    data = [
        {
            "ProductId": r.product_id,
            "OtaVersion": r.ota_version,
            "PubStatus": r.pub_status,
            "VersionUrl": r.version_url,
            "FileSize": r.file_size,
            "Md5": r.md5,
            "OldVersions": json.dumps(r.old_versions or []),
            "Tids": json.dumps(r.tids or []),
            "GrayValue": r.gray_value,
            "PublishTime": r.publish_time,
            "ActiveCount": r.active,
            "OnlineCount": r.online_n,
            "UpdateTime": r.upload_time,
            "UploadTime": r.update_time,
            "ModifyTimes": r.modify_times,
            "Remark": r.remark,
            "Contents": r.contents or None,
            "AliveInMonthCnt": r.alive,
        }
        for r in rows
    ]
    return {"TotalCount": total, "Data": data}


async def run_ota_version(ctx: ActionContext, p: RunOtaVersionParams) -> dict[str, Any]:
    """Publish officially to GrayValue percent of the devices on OldVersions (all when
    empty); running again changes the audience."""
    row = await _release(ctx, p.ProductId, p.OtaVersion)
    values: dict[str, Any] = {
        "pub_status": OFFICIAL,
        "gray_value": p.GrayValue,
        "old_versions": list(dict.fromkeys(p.OldVersions)),
        "publish_time": ctx.now,
    }
    if p.Remark:
        values["remark"] = p.Remark
    if p.Contents is not None:
        values["contents"] = p.Contents.model_dump()
    await _change(ctx, row, values, p.Operator)
    return {}


async def _change(
    ctx: ActionContext, row: AnyRow, values: dict[str, Any], operator: str = ""
) -> None:
    """Update a release: its update time and modification count move too, and its
    operator when one is named."""
    values |= {"update_time": ctx.now, "modify_times": row.modify_times + 1}
    if operator:
        values["operator"] = operator
    await ctx.conn.execute(
        update(ota_versions)
        .where(
            ota_versions.c.product_id == row.product_id,
            ota_versions.c.ota_version == row.ota_version,
        )
        .values(values)
    )


async def run_test_ota_version(ctx: ActionContext, p: RunTestOtaVersionParams) -> dict[str, Any]:
    """Publish to the named devices of the product only (a test release); running it
    again names the devices anew, and RunOtaVersion later makes it official."""
    row = await _release(ctx, p.ProductId, p.OtaVersion)
    chosen = await ctx.devices(p.Tids)
    others = [d.tid for d in chosen if d.product_id != row.product_id]
    if others:
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE,
            f"Tids: {others[0]} is not a device of product {row.product_id}.",
        )
    values: dict[str, Any] = {
        "pub_status": TEST,
        "tids": [d.tid for d in chosen],
        "publish_time": ctx.now,
    }
    if p.Remark:
        values["remark"] = p.Remark
    await _change(ctx, row, values, p.Operator)
    return {}


async def disable_ota_version(ctx: ActionContext, p: DeleteOtaVersionParams) -> dict[str, Any]:
    """Stop offering a release (kept, listed with PubStatus 4); UpgradeDevice refuses it.
    RunOtaVersion or RunTestOtaVersion publishes it again."""
    row = await _release(ctx, p.ProductId, p.OtaVersion)
    values: dict[str, Any] = {"pub_status": DISABLED}
    await _change(ctx, row, values, p.Operator)
    return {}


async def modify_ver_content(ctx: ActionContext, p: ModifyVerContentParams) -> dict[str, Any]:
    """Change a release's notes or remark (those given); the offer's notes follow."""
    row = await _release(ctx, p.ProductId, p.OtaVersion)
    values: dict[str, Any] = {}
    if p.Remark is not None:
        values["remark"] = p.Remark
    if p.Contents is not None:
        values["contents"] = p.Contents.model_dump()
    await _change(ctx, row, values, p.Operator)
    return {}


async def describe_pub_versions(ctx: ActionContext, p: ProductIdParams) -> dict[str, Any]:
    """The product's releases that were ever published (officially or to test devices),
    the newest publication first."""
    product = await ctx.product(p.ProductId)
    rows = await ctx.conn.execute(
        select(ota_versions.c.ota_version, ota_versions.c.publish_time)
        .where(ota_versions.c.product_id == product.product_id, ota_versions.c.publish_time > 0)
        .order_by(ota_versions.c.publish_time.desc(), ota_versions.c.ota_version)
    )
    return {"Data": [{"OtaVersion": v, "PublishTime": t} for v, t in rows]}


async def delete_ota_version(ctx: ActionContext, p: DeleteOtaVersionParams) -> dict[str, Any]:
    row = await _release(ctx, p.ProductId, p.OtaVersion)
    await ctx.conn.execute(
        delete(ota_versions).where(
            ota_versions.c.product_id == row.product_id,
            ota_versions.c.ota_version == row.ota_version,
        )
    )
    return {}


async def upgrade_device(ctx: ActionContext, p: UpgradeDeviceParams) -> dict[str, Any]:
    """Tell one device to upgrade to a version of its product (published or not, but
    not disabled); it downloads, checks and installs it, reporting its progress."""
    device = await ctx.device(p.Tid)
    row = await _release(ctx, device.product_id, p.OtaVersion)
    if row.pub_status == DISABLED:
        raise VendorError(Code.FAILED_OPERATION, f"version {row.ota_version} is disabled.")
    offer = {
        "version": row.ota_version,
        "url": row.version_url,
        "size": row.file_size,
        "md5": row.md5,
        "upgDescs": describe(row.contents, None),
        "now": p.UpgradeNow,
    }
    ctx.tell_device(device.tid, "ota.upgrade", offer)
    online = bool(device.online)
    return {"Data": json.dumps({"Tid": device.tid, "OtaVersion": row.ota_version, "Sent": online})}


def register(api: VendorApi) -> None:
    api.add("UploadOtaVersion", UploadOtaVersionParams, upload_ota_version)
    api.add("DescribeOtaVersions", DescribeOtaVersionsParams, describe_ota_versions, writes=False)
    api.add("RunOtaVersion", RunOtaVersionParams, run_ota_version)
    api.add("RunTestOtaVersion", RunTestOtaVersionParams, run_test_ota_version)
    api.add("DisableOtaVersion", DeleteOtaVersionParams, disable_ota_version)
    api.add("ModifyVerContent", ModifyVerContentParams, modify_ver_content)
    api.add("DescribePubVersions", ProductIdParams, describe_pub_versions, writes=False)
    api.add("DeleteOtaVersion", DeleteOtaVersionParams, delete_ota_version)
    api.add("UpgradeDevice", UpgradeDeviceParams, upgrade_device)
