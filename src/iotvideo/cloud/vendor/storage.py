"""Cloud storage: CreateStorageService, DescribeStorageService, DeliverStorageService,
RefundStorageService; CreateStorage, the reference's older way to buy one package.

A service belongs to one channel of one device (``ChnNum``, 0 for a camera; an NVR's
channels have their own). Buying a package for a channel that has a live service (in
use, or expired with video still kept) renews it: the new order starts when the last one
ends (``IsRenew``). Orders, statuses and times: :mod:`iotvideo.cloud.storage`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from sqlalchemy import insert, select, update

from iotvideo.cloud import ids
from iotvideo.cloud.db.tables import AnyRow, storage_orders, storage_services
from iotvideo.cloud.storage import (
    PACKAGES,
    OrderStatus,
    ServiceStatus,
    order_status,
    service_view,
)
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import Code, VendorError, not_found
from iotvideo.cloud.vendor.params import Id, Params, Short, Timestamp

__all__ = ["register"]

PkgId = Literal[
    "yc1m3d", "yc1m7d", "yc1m30d", "yc1y3d", "yc1y7d", "yc1y30d", "yc1w7d",
    "ye1m3d", "ye1m7d", "ye1m30d", "ye1y3d", "ye1y7d", "ye1y30d", "ye1w7d",
]  # fmt: skip
Channel = Annotated[int, Field(ge=0, le=255)]


class CreateStorageServiceParams(Params):
    PkgId: PkgId
    Tid: Id
    OrderCount: Annotated[int, Field(ge=1, le=120)] = 1
    StorageRegion: Short = ""
    ChnNum: Channel = 0
    AccessId: Id | None = None
    EnableTime: Timestamp | None = None


class CreateStorageParams(Params):
    PkgId: PkgId
    Tid: Id
    #: The vendor's own user id, for the reference's billing records: accepted, not kept.
    UserTag: Short = ""


class DescribeStorageServiceParams(Params):
    ServiceId: Id
    GetFinishedOrder: bool = False


class DeliverStorageServiceParams(Params):
    SrcServiceId: Id
    Tid: Id
    ChnNum: Channel = 0
    AccessId: Id | None = None


class RefundStorageServiceParams(Params):
    ServiceId: Id
    OrderId: Id


async def _service(ctx: ActionContext, service_id: str) -> AnyRow:
    row = (
        await ctx.conn.execute(
            select(storage_services).where(
                storage_services.c.service_id == service_id,
                storage_services.c.vendor_id == ctx.vendor_id,
            )
        )
    ).first()
    if row is None:
        raise not_found("ServiceId", service_id)
    return row


async def _orders(ctx: ActionContext, service_id: str) -> list[AnyRow]:
    rows = await ctx.conn.execute(
        select(storage_orders)
        .where(storage_orders.c.service_id == service_id)
        .order_by(storage_orders.c.start_time, storage_orders.c.created_at)
    )
    return list(rows)


async def _live_service(ctx: ActionContext, tid: str, chn: int) -> AnyRow | None:
    """The channel's service that is in use or still keeps video, if any."""
    rows = await ctx.conn.execute(
        select(storage_services).where(
            storage_services.c.tid == tid,
            storage_services.c.chn_num == chn,
            storage_services.c.vendor_id == ctx.vendor_id,
            storage_services.c.delivered_to.is_(None),
        )
    )
    for row in rows:
        view = service_view(await _orders(ctx, row.service_id), ctx.now)
        if view.status is not ServiceStatus.EXPIRED:
            return row
    return None


async def _describe(
    ctx: ActionContext, service: AnyRow, *, finished: bool = True
) -> dict[str, Any]:
    orders = await _orders(ctx, service.service_id)
    view = service_view(orders, ctx.now)
    done = (OrderStatus.ENDED, OrderStatus.REFUNDED, OrderStatus.MOVED_AWAY)
    data = []
    for order in orders:
        status = order_status(order, ctx.now)
        if finished or status not in done:
            data.append(
                {
                    "OrderId": order.order_id,
                    "PkgId": order.pkg_id,
                    "Status": int(status),
                    "StartTime": order.start_time,
                    "EndTime": order.end_time,
                }
            )
    return {
        "ServiceId": service.service_id,
        "StorageRegion": service.region,
        "Tid": service.tid,
        "ChnNum": service.chn_num,
        "AccessId": service.access_id,
        "StartTime": view.start_time,
        "EndTime": view.end_time,
        "Status": int(view.status),
        "Data": data,
    }


async def _add_order(
    ctx: ActionContext,
    service_id: str,
    pkg_id: str,
    start: int,
    end: int,
    *,
    moved_from: str | None = None,
) -> str:
    order_id = ids.order_id()
    await ctx.conn.execute(
        insert(storage_orders).values(
            order_id=order_id,
            service_id=service_id,
            pkg_id=pkg_id,
            storage_days=PACKAGES[pkg_id].days,
            start_time=start,
            end_time=end,
            created_at=ctx.now,
            moved_from=moved_from,
        )
    )
    return order_id


async def _new_service(ctx: ActionContext, tid: str, chn: int, access_id: str, region: str) -> str:
    service_id = ids.service_id()
    await ctx.conn.execute(
        insert(storage_services).values(
            service_id=service_id,
            vendor_id=ctx.vendor_id,
            tid=tid,
            chn_num=chn,
            access_id=access_id,
            region=region,
            created_at=ctx.now,
        )
    )
    return service_id


async def create_storage_service(
    ctx: ActionContext, p: CreateStorageServiceParams
) -> dict[str, Any]:
    device = await ctx.device(p.Tid)
    if p.AccessId is not None:
        await ctx.user(p.AccessId)
    existing = await _live_service(ctx, device.tid, p.ChnNum)
    if existing is not None:
        view = service_view(await _orders(ctx, existing.service_id), ctx.now)
        start = max(view.end_time, ctx.now, p.EnableTime or 0)
        service_id = existing.service_id
        if p.AccessId:
            await ctx.conn.execute(
                update(storage_services)
                .where(storage_services.c.service_id == service_id)
                .values(access_id=p.AccessId)
            )
    else:
        start = max(p.EnableTime or ctx.now, ctx.now)
        service_id = await _new_service(
            ctx, device.tid, p.ChnNum, p.AccessId or "", p.StorageRegion
        )
    length = PACKAGES[p.PkgId].length
    for n in range(p.OrderCount):
        await _add_order(ctx, service_id, p.PkgId, start + n * length, start + (n + 1) * length)
    ctx.tell_device(device.tid, "vas.changed", {"chn": p.ChnNum})
    result = await _describe(ctx, await _service(ctx, service_id))
    return {"IsRenew": existing is not None, **result}


async def describe_storage_service(
    ctx: ActionContext, p: DescribeStorageServiceParams
) -> dict[str, Any]:
    return await _describe(ctx, await _service(ctx, p.ServiceId), finished=p.GetFinishedOrder)


async def deliver_storage_service(
    ctx: ActionContext, p: DeliverStorageServiceParams
) -> dict[str, Any]:
    """Move a service's remaining orders to another device (or channel)."""
    source = await _service(ctx, p.SrcServiceId)
    if source.delivered_to is not None:
        raise VendorError(
            Code.FAILED_OPERATION,
            f"service {source.service_id} was already delivered to {source.delivered_to}.",
        )
    device = await ctx.device(p.Tid)
    if (device.tid, p.ChnNum) == (source.tid, source.chn_num):
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE, "Tid and ChnNum are those of the source service."
        )
    if p.AccessId is not None:
        await ctx.user(p.AccessId)
    if await _live_service(ctx, device.tid, p.ChnNum) is not None:
        raise VendorError(
            Code.RESOURCE_IN_USE,
            f"device {device.tid} channel {p.ChnNum} has a cloud-storage service already.",
        )
    remaining = [
        o
        for o in await _orders(ctx, source.service_id)
        if order_status(o, ctx.now)
        in (OrderStatus.IN_USE, OrderStatus.NOT_STARTED, OrderStatus.MOVED_IN_NOT_STARTED)
    ]
    if not remaining:
        raise VendorError(
            Code.FAILED_OPERATION, f"service {source.service_id} has no order left to deliver."
        )
    service_id = await _new_service(
        ctx, device.tid, p.ChnNum, p.AccessId or source.access_id, source.region
    )
    for order in remaining:
        new_id = await _add_order(
            ctx,
            service_id,
            order.pkg_id,
            max(order.start_time, ctx.now),
            order.end_time,
            moved_from=order.order_id,
        )
        await ctx.conn.execute(
            update(storage_orders)
            .where(storage_orders.c.order_id == order.order_id)
            .values(moved_to=new_id)
        )
    await ctx.conn.execute(
        update(storage_services)
        .where(storage_services.c.service_id == source.service_id)
        .values(delivered_to=service_id)
    )
    ctx.tell_device(source.tid, "vas.changed", {"chn": source.chn_num})
    ctx.tell_device(device.tid, "vas.changed", {"chn": p.ChnNum})
    result = await _describe(ctx, await _service(ctx, service_id))
    return {"SrcServiceId": source.service_id, **result}


async def refund_storage_service(
    ctx: ActionContext, p: RefundStorageServiceParams
) -> dict[str, Any]:
    service = await _service(ctx, p.ServiceId)
    order = next(
        (o for o in await _orders(ctx, service.service_id) if o.order_id == p.OrderId), None
    )
    if order is None:
        raise not_found("OrderId", p.OrderId)
    status = order_status(order, ctx.now)
    if status not in (
        OrderStatus.IN_USE,
        OrderStatus.NOT_STARTED,
        OrderStatus.MOVED_IN_NOT_STARTED,
    ):
        raise VendorError(
            Code.FAILED_OPERATION,
            f"order {order.order_id} cannot be refunded: its status is {int(status)} "
            "(only orders in use or not started can).",
        )
    await ctx.conn.execute(
        update(storage_orders)
        .where(storage_orders.c.order_id == order.order_id)
        .values(refunded_at=ctx.now)
    )
    ctx.tell_device(service.tid, "vas.changed", {"chn": service.chn_num})
    return await _describe(ctx, service)


async def create_storage(ctx: ActionContext, p: CreateStorageParams) -> dict[str, Any]:
    """One order of ``PkgId`` for the device's channel 0, as CreateStorageService buys it
    (a renewal where the channel has a service); the answer carries nothing more."""
    await create_storage_service(ctx, CreateStorageServiceParams(PkgId=p.PkgId, Tid=p.Tid))
    return {}


def register(api: VendorApi) -> None:
    api.add("CreateStorageService", CreateStorageServiceParams, create_storage_service)
    api.add("CreateStorage", CreateStorageParams, create_storage)
    api.add(
        "DescribeStorageService",
        DescribeStorageServiceParams,
        describe_storage_service,
        writes=False,
    )
    api.add("DeliverStorageService", DeliverStorageServiceParams, deliver_storage_service)
    api.add("RefundStorageService", RefundStorageServiceParams, refund_storage_service)
