"""Message forwarding: SetMessageQueue, DescribeMessageQueue, DeleteMessageQueue.

The reference forwards a product's device messages to a CMQ or CKafka queue. Here a
product's queue forwards them to an engine this cloud runs with:

===============  =====================================================================
MsgQueueType 1   the vendor's webhook (its notification URL, ``iotvideo cloud vendor
                 events``), signed as every notification, with the header
                 ``x-iotvideo-topic: <Topic>``
MsgQueueType 2   a Redis Stream on the bus's Redis, ``iotvideo:mq:<VendorId>:<Topic>``
                 (entries ``id``, ``type``, ``timestamp``, ``data``), read with XREAD or
                 a consumer group; kept to about 100,000 entries
===============  =====================================================================

MsgType bits: 0 online state, 1 ProConst, 2 ProWritable, 3 ProReadonly, 4 Action, 5 Event,
6 system (none are sent yet); 7..31 are accepted and carry nothing. Instance and
MsgRegion are kept and given back, and used for nothing. Each message is queued in the
transaction that stores the change it reports, and sent at least once (a consumer
deduplicates on ``id``); see :mod:`iotvideo.cloud.tracing`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from sqlalchemy import delete, insert, select, update

from iotvideo.cloud.db.tables import message_queues, vendors
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import Code, VendorError, not_found
from iotvideo.cloud.vendor.params import PRINTABLE, Id, Params
from iotvideo.cloud.vendor.products import ProductIdParams

__all__ = ["msg_types_bits", "register"]


def msg_types_bits(text: str) -> int:
    """``"0,1,5"`` as a bit set; ValueError if it names no type or one outside 0..31."""
    bits = 0
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 0 <= int(part) <= 31:
            raise ValueError("MsgType is integers 0 to 31 separated by ','")
        bits |= 1 << int(part)
    return bits


def _msg_types(text: str) -> str:
    msg_types_bits(text)
    return text


class SetMessageQueueParams(Params):
    ProductId: Id
    MsgQueueType: Literal[1, 2]
    MsgType: Annotated[str, Field(min_length=1, max_length=96), AfterValidator(_msg_types)]
    Topic: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
    Instance: Annotated[str, Field(max_length=64), PRINTABLE] = ""
    MsgRegion: Annotated[str, Field(max_length=32), PRINTABLE] = ""


async def set_message_queue(ctx: ActionContext, p: SetMessageQueueParams) -> dict[str, Any]:
    product = await ctx.product(p.ProductId)
    if p.MsgQueueType == 1:
        url = await ctx.conn.scalar(
            select(vendors.c.events_url).where(vendors.c.vendor_id == ctx.vendor_id)
        )
        if not url:
            raise VendorError(
                Code.FAILED_OPERATION,
                "MsgQueueType 1 forwards to the vendor's notification URL, and none is set; "
                "the operator sets it with `iotvideo cloud vendor events VENDOR URL`.",
            )
    elif not ctx.live.settings.bus.startswith(("redis://", "rediss://", "unix://")):
        raise VendorError(
            Code.UNSUPPORTED_OPERATION,
            "MsgQueueType 2 writes to a Redis Stream, and this cloud runs without Redis "
            "(its --bus); use MsgQueueType 1 (the webhook).",
        )
    values = {
        "queue_type": p.MsgQueueType,
        "msg_types": msg_types_bits(p.MsgType),
        "topic": p.Topic,
        "instance": p.Instance,
        "region": p.MsgRegion,
        "updated_at": ctx.now,
    }
    changed = await ctx.conn.execute(
        update(message_queues)
        .where(message_queues.c.product_id == product.product_id)
        .values(values)
    )
    if changed.rowcount == 0:
        await ctx.conn.execute(
            insert(message_queues).values(
                product_id=product.product_id,
                vendor_id=ctx.vendor_id,
                created_at=ctx.now,
                **values,
            )
        )
    return {}


async def _queue(ctx: ActionContext, product_id: str) -> Any:
    product = await ctx.product(product_id)
    row = (
        await ctx.conn.execute(
            select(message_queues).where(message_queues.c.product_id == product.product_id)
        )
    ).first()
    if row is None:
        raise not_found("message queue of ProductId", product_id)
    return row


async def describe_message_queue(ctx: ActionContext, p: ProductIdParams) -> dict[str, Any]:
    row = await _queue(ctx, p.ProductId)
    return {
        "Data": {
            "MsgQueueType": row.queue_type,
            "MsgType": ",".join(str(i) for i in range(32) if row.msg_types >> i & 1),
            "Topic": row.topic,
            "Instance": row.instance,
            "MsgRegion": row.region,
        }
    }


async def delete_message_queue(ctx: ActionContext, p: ProductIdParams) -> dict[str, Any]:
    row = await _queue(ctx, p.ProductId)
    await ctx.conn.execute(
        delete(message_queues).where(message_queues.c.product_id == row.product_id)
    )
    return {}


def register(api: VendorApi) -> None:
    api.add("SetMessageQueue", SetMessageQueueParams, set_message_queue)
    api.add("DescribeMessageQueue", ProductIdParams, describe_message_queue, writes=False)
    api.add("DeleteMessageQueue", ProductIdParams, delete_message_queue)
