"""Devices: CreateDevices, DescribeDevice(s), Delete/Disable/RunDevice, ModifyDevice,
ClearDeviceActiveCode."""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import Field
from sqlalchemy import delete, func, insert, select, update

from iotvideo.cloud import ids
from iotvideo.cloud.db.tables import AnyRow, bindings, device_state, devices, products
from iotvideo.cloud.retention import delete_device_files
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import not_found
from iotvideo.cloud.vendor.params import PRINTABLE, Count, Id, IdList, Offset, Params, Short
from iotvideo.protocol.certificate import DeviceCertificate
from iotvideo.protocol.errors import ErrorCode

__all__ = ["device_data", "register"]


class CreateDevicesParams(Params):
    ProductId: Id
    Number: Count
    NamePrefix: Annotated[str, Field(max_length=10, pattern=r"^[A-Za-z0-9]*$")] = ""
    Operator: Short = ""


class TidParams(Params):
    Tid: Id


class TidsParams(Params):
    Tids: IdList


class DescribeDevicesParams(Params):
    ProductId: Id
    ReturnModel: bool
    Limit: Count
    Offset: Offset
    OtaVersion: Annotated[str, Field(max_length=32), PRINTABLE] | None = None
    DeviceName: Short | None = None


class ModifyDeviceParams(Params):
    Tid: Id
    AccessId: Id
    Nick: Short


def _key_pair(tid: str, product_id: str) -> tuple[bytes, str]:
    """A new Ed25519 key: the public half to keep, the Certificate to hand out once."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    cert = DeviceCertificate(tid=tid, product_id=product_id, private_key=key.private_bytes_raw())
    return public, cert.to_string()


async def create_devices(ctx: ActionContext, p: CreateDevicesParams) -> dict[str, Any]:
    product = await ctx.product(p.ProductId)
    # Reserve a block of sequence numbers for the names; concurrent batches get others.
    first = await ctx.conn.scalar(
        update(products)
        .where(products.c.product_id == product.product_id)
        .values(device_seq=products.c.device_seq + p.Number)
        .returning(products.c.device_seq - p.Number + 1)
    )
    assert first is not None
    prefix = p.NamePrefix or "dev"
    rows, data = [], []
    for seq in range(first, first + p.Number):
        tid = ids.tid()
        public, certificate = _key_pair(tid, product.product_id)
        rows.append(
            {
                "tid": tid,
                "product_id": product.product_id,
                "vendor_id": ctx.vendor_id,
                "device_name": f"{prefix}{seq:06d}",
                "public_key": public,
                "disabled": False,
                "active_time": 0,
                "ota_version": "",
                "online": 0,
                "last_online_time": 0,
                "created_at": ctx.now,
            }
        )
        data.append({"Tid": tid, "Certificate": certificate, "WhiteBoxSoUrl": ""})
    await ctx.conn.execute(insert(devices), rows)
    return {"Data": data}


def device_data(d: AnyRow, *, iot_model: str = "") -> dict[str, Any]:
    """DeviceData. The Certificate was returned once, by CreateDevices, and is not kept."""
    return {
        "Tid": d.tid,
        "ActiveTime": d.active_time,
        "Disabled": d.disabled,
        "OtaVersion": d.ota_version,
        "Online": d.online,
        "LastOnlineTime": d.last_online_time,
        "IotModel": iot_model,
        "DeviceName": d.device_name,
        "ProductId": d.product_id,
        "Certificate": "",
        "WhiteBoxSoUrl": "",
        "StreamStatus": not d.disabled and not d.stream_disabled,
    }


def _devices_data(d: AnyRow, full: bool) -> dict[str, Any]:
    return {
        "Tid": d.tid,
        "DeviceName": d.device_name,
        "ActiveTime": d.active_time,
        "Disabled": d.disabled,
        "StreamStatus": not d.disabled and not d.stream_disabled,
        "OtaVersion": d.ota_version if full else "",
        "Online": d.online if full else 0,
        "LastOnlineTime": d.last_online_time if full else 0,
        "IotModel": "",
        "LastUpdateTime": d.created_at if full else 0,
    }


async def describe_device(ctx: ActionContext, p: TidParams) -> dict[str, Any]:
    device = await ctx.device(p.Tid)
    state = await ctx.conn.scalar(
        select(device_state.c.doc).where(device_state.c.tid == device.tid)
    )
    return {"Data": device_data(device, iot_model=json.dumps(state) if state else "")}


async def describe_devices(ctx: ActionContext, p: DescribeDevicesParams) -> dict[str, Any]:
    product = await ctx.product(p.ProductId)
    where = [devices.c.product_id == product.product_id]
    if p.OtaVersion:
        where.append(devices.c.ota_version == p.OtaVersion)
    if p.DeviceName:
        where.append(devices.c.device_name.startswith(p.DeviceName, autoescape=True))
    total = await ctx.conn.scalar(select(func.count()).select_from(devices).where(*where))
    rows = await ctx.conn.execute(
        select(devices)
        .where(*where)
        .order_by(devices.c.created_at, devices.c.device_name)
        .limit(p.Limit)
        .offset(p.Offset)
    )
    return {"Data": [_devices_data(d, p.ReturnModel) for d in rows], "TotalCount": total or 0}


async def delete_device(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    tids = [d.tid for d in await ctx.devices(p.Tids)]
    users = await ctx.conn.scalars(select(bindings.c.access_id).where(bindings.c.tid.in_(tids)))
    for access_id in set(users):
        ctx.notify_user(access_id)
    await ctx.conn.execute(delete(devices).where(devices.c.tid.in_(tids)))
    for tid in tids:
        ctx.kick_device(tid, ErrorCode.IVASrvErr_dst_notexsit, "the device was deleted")
        if ctx.link is not None:
            data = ctx.link.settings.data
            ctx.after_commit.append(partial(delete_device_files, data, tid))
    return {}


async def _set_disabled(ctx: ActionContext, tids: list[str], disabled: bool) -> None:
    found = [d.tid for d in await ctx.devices(tids)]
    await ctx.conn.execute(
        update(devices).where(devices.c.tid.in_(found)).values(disabled=disabled)
    )


async def disable_device(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    await _set_disabled(ctx, p.Tids, True)
    for tid in p.Tids:
        ctx.kick_device(
            tid, ErrorCode.IVTermErr_msg_calling_dev_is_disable, "the device was disabled"
        )
    return {}


async def run_device(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    await _set_disabled(ctx, p.Tids, False)
    return {}


async def clear_device_active_code(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    """The devices count as never activated (ActiveTime 0); the next login activates them
    again, as a device's first login did. An online device is not logged out."""
    found = [d.tid for d in await ctx.devices(p.Tids)]
    await ctx.conn.execute(update(devices).where(devices.c.tid.in_(found)).values(active_time=0))
    return {}


async def modify_device(ctx: ActionContext, p: ModifyDeviceParams) -> dict[str, Any]:
    device = await ctx.device(p.Tid)
    await ctx.user(p.AccessId)
    result = await ctx.conn.execute(
        update(bindings)
        .where(bindings.c.access_id == p.AccessId, bindings.c.tid == device.tid)
        .values(nick=p.Nick)
    )
    if result.rowcount == 0:
        raise not_found("binding of AccessId to Tid", f"{p.AccessId} -> {p.Tid}")
    return {}


def register(api: VendorApi) -> None:
    api.add("CreateDevices", CreateDevicesParams, create_devices)
    api.add("DescribeDevice", TidParams, describe_device, writes=False)
    api.add("DescribeDevices", DescribeDevicesParams, describe_devices, writes=False)
    api.add("DeleteDevice", TidsParams, delete_device)
    api.add("DisableDevice", TidsParams, disable_device)
    api.add("RunDevice", TidsParams, run_device)
    api.add("ModifyDevice", ModifyDeviceParams, modify_device)
    api.add("ClearDeviceActiveCode", TidsParams, clear_device_active_code)
