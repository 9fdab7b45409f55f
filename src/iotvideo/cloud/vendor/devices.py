"""Devices: CreateDevices, DescribeDevice(s), Delete/Disable/RunDevice, ModifyDevice."""

from __future__ import annotations

from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import Field
from sqlalchemy import func, select

from iotvideo.cloud import ids
from iotvideo.cloud.db.models import Binding, Device
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import not_found
from iotvideo.cloud.vendor.params import PRINTABLE, Count, Id, IdList, Offset, Params, Short
from iotvideo.protocol.certificate import DeviceCertificate

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


def _new_device(ctx: ActionContext, product_id: str, name: str) -> tuple[Device, str]:
    key = Ed25519PrivateKey.generate()
    tid = ids.tid()
    device = Device(
        tid=tid,
        product_id=product_id,
        vendor_id=ctx.vendor_id,
        device_name=name,
        public_key=key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        disabled=False,
        active_time=0,
        ota_version="",
        online=0,
        last_online_time=0,
        created_at=ctx.now,
    )
    seed = key.private_bytes_raw()
    return device, DeviceCertificate(tid=tid, product_id=product_id, private_key=seed).to_string()


async def create_devices(ctx: ActionContext, p: CreateDevicesParams) -> dict[str, Any]:
    product = await ctx.product(p.ProductId)
    prefix = p.NamePrefix or "dev"
    data = []
    for _ in range(p.Number):
        product.device_seq += 1
        device, certificate = _new_device(
            ctx, product.product_id, f"{prefix}{product.device_seq:06d}"
        )
        ctx.session.add(device)
        data.append({"Tid": device.tid, "Certificate": certificate, "WhiteBoxSoUrl": ""})
    return {"Data": data}


def device_data(d: Device, *, iot_model: str = "") -> dict[str, Any]:
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
        "StreamStatus": not d.disabled,
    }


def _devices_data(d: Device, full: bool) -> dict[str, Any]:
    return {
        "Tid": d.tid,
        "DeviceName": d.device_name,
        "ActiveTime": d.active_time,
        "Disabled": d.disabled,
        "StreamStatus": not d.disabled,
        "OtaVersion": d.ota_version if full else "",
        "Online": d.online if full else 0,
        "LastOnlineTime": d.last_online_time if full else 0,
        "IotModel": "",
        "LastUpdateTime": d.created_at if full else 0,
    }


async def describe_device(ctx: ActionContext, p: TidParams) -> dict[str, Any]:
    return {"Data": device_data(await ctx.device(p.Tid))}


async def describe_devices(ctx: ActionContext, p: DescribeDevicesParams) -> dict[str, Any]:
    product = await ctx.product(p.ProductId)
    where = [Device.product_id == product.product_id]
    if p.OtaVersion:
        where.append(Device.ota_version == p.OtaVersion)
    if p.DeviceName:
        where.append(Device.device_name.startswith(p.DeviceName, autoescape=True))
    total = await ctx.session.scalar(select(func.count()).select_from(Device).where(*where))
    rows = await ctx.session.scalars(
        select(Device)
        .where(*where)
        .order_by(Device.created_at, Device.device_name)
        .limit(p.Limit)
        .offset(p.Offset)
    )
    return {"Data": [_devices_data(d, p.ReturnModel) for d in rows], "TotalCount": total or 0}


async def delete_device(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    for device in await ctx.devices(p.Tids):
        await ctx.session.delete(device)
    return {}


async def disable_device(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    for device in await ctx.devices(p.Tids):
        device.disabled = True
    return {}


async def run_device(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    for device in await ctx.devices(p.Tids):
        device.disabled = False
    return {}


async def modify_device(ctx: ActionContext, p: ModifyDeviceParams) -> dict[str, Any]:
    device = await ctx.device(p.Tid)
    await ctx.user(p.AccessId)
    binding = await ctx.session.get(Binding, (p.AccessId, device.tid))
    if binding is None:
        raise not_found("binding of AccessId to Tid", f"{p.AccessId} -> {p.Tid}")
    binding.nick = p.Nick
    return {}


def register(api: VendorApi) -> None:
    api.add("CreateDevices", CreateDevicesParams, create_devices)
    api.add("DescribeDevice", TidParams, describe_device)
    api.add("DescribeDevices", DescribeDevicesParams, describe_devices)
    api.add("DeleteDevice", TidsParams, delete_device)
    api.add("DisableDevice", TidsParams, disable_device)
    api.add("RunDevice", TidsParams, run_device)
    api.add("ModifyDevice", ModifyDeviceParams, modify_device)
