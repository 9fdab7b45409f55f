"""Thing models and device messages: CreateIotModel, DescribeIotModel(s), RunIotModel,
DescribeDeviceModel, ModifyDeviceProperty, ModifyDeviceAction, DescribeModelDataRet,
SendOnlineMsg.

Requests that need a device's answer wait up to ``vendor_device_wait`` seconds (a
setting); a device that answers later leaves a ``TaskId`` whose result
DescribeModelDataRet reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from sqlalchemy import insert, select, update

from iotvideo.cloud.db.tables import AnyRow, iot_models, products, tasks
from iotvideo.cloud.link.context import LinkContext
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.datatypes import expand_custom_types
from iotvideo.cloud.vendor.errors import Code, VendorError, from_iv_error, not_found
from iotvideo.cloud.vendor.params import PRINTABLE, Id, Params
from iotvideo.protocol.errors import IVError
from iotvideo.protocol.thingmodel import ThingModel, read

__all__ = ["register"]

log = logging.getLogger("iotvideo.cloud.vendor")

#: How long the cloud keeps waiting for a late answer behind a TaskId.
LATE_WAIT = 60.0
MAX_MODEL_BYTES = 256 * 1024

ModelText = Annotated[str, Field(min_length=2, max_length=MAX_MODEL_BYTES)]
BranchText = Annotated[str, Field(max_length=256), PRINTABLE]
ValueText = Annotated[str, Field(max_length=16 * 1024)]
_late: set[asyncio.Task[Any]] = set()


class ModelParams(Params):
    ProductId: Id
    IotModel: ModelText


class DescribeIotModelParams(Params):
    ProductId: Id
    Revision: Annotated[int, Field(ge=-1, le=(1 << 31) - 1)]


class ProductParams(Params):
    ProductId: Id


class DeviceModelParams(Params):
    Tid: Id
    Branch: BranchText = ""


class ModifyParams(Params):
    Tid: Id
    Branch: BranchText
    Value: ValueText
    Wakeup: bool = False
    IsNum: bool = False


class TaskParams(Params):
    TaskId: Annotated[str, Field(min_length=1, max_length=40), PRINTABLE]


def _at_most_8_kb(text: str) -> str:
    if len(text.encode("utf-8", "surrogatepass")) > 8192:
        raise ValueError("must be at most 8 KB in UTF-8")
    return text


class SendOnlineMsgParams(Params):
    Tid: Id
    MsgTopic: Annotated[str, Field(max_length=128), PRINTABLE]
    MsgContent: Annotated[str, Field(max_length=8192), AfterValidator(_at_most_8_kb)]
    Wakeup: bool = False
    WaitResp: Annotated[int, Field(ge=0, le=2)] = 0


def _parse_model(text: str) -> ThingModel:
    try:
        return ThingModel.parse(text)
    except ValueError as exc:
        raise VendorError(Code.INVALID_PARAMETER_VALUE, f"IotModel: {exc}") from None


async def create_iot_model(ctx: ActionContext, p: ModelParams) -> dict[str, Any]:
    """Submit a model definition (a draft; RunIotModel publishes)."""
    product = await ctx.product(p.ProductId)
    model = _parse_model(await expand_custom_types(ctx, p.IotModel))
    await ctx.conn.execute(
        update(products)
        .where(products.c.product_id == product.product_id)
        .values(draft_model=model.source)
    )
    return {}


async def run_iot_model(ctx: ActionContext, p: ModelParams) -> dict[str, Any]:
    """Publish a model: a new revision that devices of the product use from now on."""
    product = await ctx.product(p.ProductId)
    model = _parse_model(await expand_custom_types(ctx, p.IotModel))
    revision = product.iot_model_revision + 1
    await ctx.conn.execute(
        insert(iot_models).values(
            product_id=product.product_id,
            revision=revision,
            source=model.source,
            created_at=ctx.now,
        )
    )
    await ctx.conn.execute(
        update(products)
        .where(products.c.product_id == product.product_id)
        .values(iot_model_revision=revision, draft_model="")
    )
    return {}


async def describe_iot_model(ctx: ActionContext, p: DescribeIotModelParams) -> dict[str, Any]:
    """A model: revision -1 is the unpublished draft, 0 the built-ins only."""
    product = await ctx.product(p.ProductId)
    return {"Data": await model_source(ctx, product, p.Revision)}


async def model_source(ctx: ActionContext, product: AnyRow, revision: int) -> str:
    """The JSON text of a product's model: ``revision`` -1 the unpublished draft, 0 the
    built-ins only; ResourceNotFound when there is no such revision."""
    if revision == -1:
        if not product.draft_model:
            raise VendorError(Code.RESOURCE_NOT_FOUND, "The product has no unpublished model.")
        return str(product.draft_model)
    if revision == 0:
        return "{}"
    source = await ctx.conn.scalar(
        select(iot_models.c.source).where(
            iot_models.c.product_id == product.product_id, iot_models.c.revision == revision
        )
    )
    if source is None:
        raise not_found("Revision", str(revision))
    return str(source)


async def describe_iot_models(ctx: ActionContext, p: ProductParams) -> dict[str, Any]:
    product = await ctx.product(p.ProductId)
    rows = await ctx.conn.execute(
        select(iot_models.c.revision, iot_models.c.created_at)
        .where(iot_models.c.product_id == product.product_id)
        .order_by(iot_models.c.revision)
    )
    return {"Data": [{"Revision": r.revision, "ReleaseTime": r.created_at} for r in rows]}


async def describe_device_model(ctx: ActionContext, p: DeviceModelParams) -> dict[str, Any]:
    device = await ctx.device(p.Tid)
    try:
        _, _, state = await ctx.live.things.snapshot(device.tid)
        value = read(state, p.Branch)
    except IVError as exc:
        raise from_iv_error(exc) from None
    return {"Data": {"Tid": device.tid, "Branch": p.Branch, "IotModel": json.dumps(value)}}


def _value_json(p: ModifyParams) -> str:
    """The Value as JSON text: IsNum says it is a number, else JSON objects stay JSON and
    anything else is a string."""
    if p.IsNum:
        try:
            number = json.loads(p.Value)
        except ValueError:
            number = None
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise VendorError(
                Code.INVALID_PARAMETER_VALUE, "IsNum is true but Value is not a number."
            )
        return p.Value
    if p.Value.lstrip().startswith(("{", "[")):
        return p.Value
    return json.dumps(p.Value)


def _write_path(branch: str) -> str:
    """ModifyDeviceProperty may name the object (ProWritable.x); the value is its setVal."""
    parts = branch.split(".")
    if len(parts) == 2 and parts[0] in _VALUE_ATTR:
        return f"{branch}.{_VALUE_ATTR[parts[0]]}"
    return branch


_VALUE_ATTR = {"ProWritable": "setVal", "ProUser": "val", "Action": "ctlVal"}


async def modify_device_property(ctx: ActionContext, p: ModifyParams) -> dict[str, Any]:
    """Set a ProWritable (or ProUser) value; an offline device gets it when it logs in."""
    device = await ctx.device(p.Tid)
    await _checked(ctx.live.messaging.write(device.tid, _write_path(p.Branch), _value_json(p)))
    return {}


async def modify_device_action(ctx: ActionContext, p: ModifyParams) -> dict[str, Any]:
    device = await ctx.device(p.Tid)
    value_json = _value_json(p)
    link = ctx.live

    async def act() -> str:
        path = _write_path(p.Branch)
        result = await link.messaging.action(device.tid, path, value_json, timeout=LATE_WAIT)
        return json.dumps(result)

    return await _answer_or_task(ctx, device.tid, act)


async def send_online_msg(ctx: ActionContext, p: SendOnlineMsgParams) -> dict[str, Any]:
    device = await ctx.device(p.Tid)
    payload = p.MsgContent.encode()
    link = ctx.live

    async def send() -> str:
        answer = await link.messaging.send_data(
            device.tid, payload, reply=p.WaitResp == 2, timeout=LATE_WAIT, topic=p.MsgTopic
        )
        return answer.decode("utf-8", "replace") if answer is not None else ""

    if p.WaitResp == 0:
        if not await link.hub.online(device.tid):
            raise VendorError(
                Code.RESOURCE_UNAVAILABLE, "The device is offline (IVASrvErr_dst_offline 8000)."
            )
        _keep(asyncio.create_task(_quietly(send())))
        return {"TaskId": "", "Data": ""}
    return await _answer_or_task(ctx, device.tid, send)


async def describe_model_data_ret(ctx: ActionContext, p: TaskParams) -> dict[str, Any]:
    row = (
        await ctx.conn.execute(
            select(tasks.c.status, tasks.c.result).where(
                tasks.c.task_id == p.TaskId, tasks.c.vendor_id == ctx.vendor_id
            )
        )
    ).first()
    if row is None:
        raise not_found("TaskId", p.TaskId)
    if row.status == "pending":
        raise VendorError(
            Code.RESOURCE_UNAVAILABLE, "The device has not answered yet; ask again later."
        )
    if row.status == "failed":
        raise VendorError(Code.FAILED_OPERATION, row.result)
    return {"Data": row.result}


async def _checked(work: Awaitable[Any]) -> Any:
    try:
        return await work
    except IVError as exc:
        raise from_iv_error(exc) from None


async def _answer_or_task(
    ctx: ActionContext, tid: str, work: Callable[[], Coroutine[Any, Any, str]]
) -> dict[str, Any]:
    """The device's answer if it comes within DEVICE_WAIT, else a TaskId for it."""
    job = asyncio.create_task(work())
    done, _ = await asyncio.wait({job}, timeout=ctx.live.settings.vendor_device_wait)
    if done:
        return {"Data": await _checked(job), "TaskId": ""}
    task_id = "task-" + secrets.token_hex(12)
    async with ctx.live.db.begin() as conn:
        await conn.execute(
            insert(tasks).values(
                task_id=task_id,
                vendor_id=ctx.vendor_id,
                tid=tid,
                status="pending",
                result="",
                created_at=ctx.now,
            )
        )
    _keep(asyncio.create_task(_finish_task(ctx.live, task_id, job)))
    return {"Data": "", "TaskId": task_id}


async def _finish_task(link: LinkContext, task_id: str, job: asyncio.Task[str]) -> None:
    try:
        status, result = "done", await job
    except IVError as exc:
        status, result = "failed", f"{exc.message} ({exc.code_name} {int(exc.code)})"
    except Exception as exc:  # keep the task's outcome whatever happened
        status, result = "failed", f"internal error: {type(exc).__name__}"
    async with link.db.begin() as conn:
        await conn.execute(
            update(tasks)
            .where(tasks.c.task_id == task_id)
            .values(status=status, result=result, finished_at=link.now())
        )


async def _quietly(work: Awaitable[Any]) -> None:
    try:
        await work
    except IVError as exc:
        log.info("fire-and-forget message failed: %s", exc)


def _keep(task: asyncio.Task[Any]) -> None:
    _late.add(task)
    task.add_done_callback(_late.discard)


def register(api: VendorApi) -> None:
    api.add("CreateIotModel", ModelParams, create_iot_model)
    api.add("RunIotModel", ModelParams, run_iot_model)
    api.add("DescribeIotModel", DescribeIotModelParams, describe_iot_model, writes=False)
    api.add("DescribeIotModels", ProductParams, describe_iot_models, writes=False)
    api.add("DescribeDeviceModel", DeviceModelParams, describe_device_model, writes=False)
    # These talk to devices and store through the thing service's own transactions, so they
    # must not hold a write transaction of their own.
    api.add("ModifyDeviceProperty", ModifyParams, modify_device_property, writes=False)
    api.add("ModifyDeviceAction", ModifyParams, modify_device_action, writes=False)
    api.add("DescribeModelDataRet", TaskParams, describe_model_data_ret, writes=False)
    api.add("SendOnlineMsg", SendOnlineMsgParams, send_online_msg, writes=False)
