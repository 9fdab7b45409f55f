"""Device logs and tracing: CreateTraceIds, DescribeTraceIds, DeleteTraceIds,
DescribeTraceStatus (the trace list), DescribeLogs (a traced device's recorded messages),
DescribeRunLog (the log text a traced device uploads).

A device on the trace list has every change of its thing-model state (LogType 1 to 6) and
its other link messages (LogType 7) recorded, see :mod:`iotvideo.cloud.tracing`, and it
uploads its own log lines (the link's ``log.upload``) while it is traced. A device not on
the list has nothing recorded.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import func, select, update

from iotvideo.cloud.db.tables import device_logs, device_runlogs, devices
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import Code, VendorError
from iotvideo.cloud.vendor.params import Count, Id, IdList, Params, Timestamp
from iotvideo.cloud.vendor.params import Offset as OffsetValue
from iotvideo.cloud.vendor.products import NoParams

__all__ = ["MAX_TRACED", "register"]

#: Devices one vendor may trace at once.
MAX_TRACED = 100


class TidsParams(Params):
    Tids: IdList


class DescribeLogsParams(Params):
    Tid: Id
    Limit: Count = 20
    Offset: OffsetValue = 0
    #: 1 online state, 2 ProConst, 3 ProWritable, 4 Action, 5 ProReadonly, 6 Event,
    #: 7 other link messages; absent: all.
    LogType: Annotated[int, Field(ge=1, le=7)] | None = None
    StartTime: Timestamp | None = None
    EndTime: Timestamp | None = None
    #: Part of the object's path (``ProWritable.nightMode``), at most 255 characters.
    DataObject: Annotated[str, Field(max_length=255)] = ""


class TidParams(Params):
    Tid: Id


def _tell(ctx: ActionContext, tids: list[str], on: bool) -> None:
    for tid in tids:
        ctx.tell_device(tid, "trace", {"on": on})


async def create_trace_ids(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    new = [d.tid for d in await ctx.devices(p.Tids) if not d.traced_since]
    traced = await ctx.conn.scalar(
        select(func.count()).where(devices.c.vendor_id == ctx.vendor_id, devices.c.traced_since > 0)
    )
    if (traced or 0) + len(new) > MAX_TRACED:
        raise VendorError(
            Code.LIMIT_EXCEEDED,
            f"At most {MAX_TRACED} devices are traced at once ({traced} are); "
            "DeleteTraceIds some first.",
        )
    if new:
        await ctx.conn.execute(
            update(devices).where(devices.c.tid.in_(new)).values(traced_since=ctx.now)
        )
        _tell(ctx, new, True)
    return {}


async def delete_trace_ids(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    found = [d.tid for d in await ctx.devices(p.Tids) if d.traced_since]
    if found:
        await ctx.conn.execute(
            update(devices).where(devices.c.tid.in_(found)).values(traced_since=0)
        )
        _tell(ctx, found, False)
    return {}


async def describe_trace_ids(ctx: ActionContext, _p: NoParams) -> dict[str, Any]:
    tids = await ctx.conn.scalars(
        select(devices.c.tid)
        .where(devices.c.vendor_id == ctx.vendor_id, devices.c.traced_since > 0)
        .order_by(devices.c.traced_since, devices.c.tid)
    )
    return {"Data": ",".join(tids)}


async def describe_trace_status(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    found = await ctx.devices(p.Tids)
    return {"Data": [{"Tid": d.tid, "IsExist": bool(d.traced_since)} for d in found]}


async def describe_logs(ctx: ActionContext, p: DescribeLogsParams) -> dict[str, Any]:
    device = await ctx.device(p.Tid)
    where = [device_logs.c.tid == device.tid]
    if p.LogType is not None:
        where.append(device_logs.c.log_type == p.LogType)
    if p.StartTime is not None:
        where.append(device_logs.c.at >= p.StartTime)
    if p.EndTime is not None:
        where.append(device_logs.c.at <= p.EndTime)
    if p.DataObject:
        where.append(device_logs.c.data_object.contains(p.DataObject, autoescape=True))
    total = await ctx.conn.scalar(select(func.count()).select_from(device_logs).where(*where))
    rows = await ctx.conn.execute(
        select(device_logs)
        .where(*where)
        .order_by(device_logs.c.at.desc(), device_logs.c.id.desc())
        .limit(p.Limit)
        .offset(p.Offset)
    )
    data = [
        {
            "Occurtime": row.at,
            "LogType": row.log_type,
            "DataObject": row.data_object,
            "OldValue": row.old_value,
            "NewValue": row.new_value,
        }
        for row in rows
    ]
    return {"Data": data, "TotalCount": total or 0}


async def describe_run_log(ctx: ActionContext, p: TidParams) -> dict[str, Any]:
    device = await ctx.device(p.Tid)
    text = await ctx.conn.scalar(
        select(device_runlogs.c.text).where(device_runlogs.c.tid == device.tid)
    )
    return {"Data": text or ""}


def register(api: VendorApi) -> None:
    api.add("CreateTraceIds", TidsParams, create_trace_ids)
    api.add("DeleteTraceIds", TidsParams, delete_trace_ids)
    api.add("DescribeTraceIds", NoParams, describe_trace_ids, writes=False)
    api.add("DescribeTraceStatus", TidsParams, describe_trace_status, writes=False)
    api.add("DescribeLogs", DescribeLogsParams, describe_logs, writes=False)
    api.add("DescribeRunLog", TidParams, describe_run_log, writes=False)
