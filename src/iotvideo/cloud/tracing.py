"""What a device's changes leave behind besides its state: the trace of a traced device
(CreateTraceIds; read with DescribeLogs) and the messages its product forwards to a
message queue (SetMessageQueue).

Both come from one place: :class:`iotvideo.cloud.things.Things` commits every change of
a device's thing-model state (reports, writes, actions, events, online and offline), and
for a traced or forwarding device it hands :func:`record_changes` the objects that
changed, in the same transaction. A trace row or a queued message therefore exists
exactly when the change it reports was stored: at least once, never for a change that
was rolled back.

Bounds: a value is cut at :data:`MAX_VALUE_CHARS`; a device keeps its newest
:data:`KEPT_LOGS` rows, none older than :data:`KEPT_LOG_SECONDS` (:func:`purge_logs`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud.db.tables import device_logs, device_runlogs, devices, webhook_outbox

__all__ = [
    "KEPT_LOGS",
    "KEPT_LOG_SECONDS",
    "LOG_TYPES",
    "MAX_RUN_LOG",
    "MAX_VALUE_CHARS",
    "MSG_TYPES",
    "Forwarding",
    "append_run_log",
    "log_link_message",
    "purge_logs",
    "queue_target",
    "record_changes",
    "stream_key",
]

#: DescribeLogs' LogType of each section's changes (7: other link messages).
LOG_TYPES = {"ProConst": 2, "ProWritable": 3, "Action": 4, "ProReadonly": 5, "Event": 6}
ONLINE_LOG = 1
OTHER_LOG = 7
#: SetMessageQueue's MsgType of each section's changes (0: online state; 6: system).
MSG_TYPES = {"ProConst": 1, "ProWritable": 2, "ProReadonly": 3, "Action": 4, "Event": 5}
ONLINE_MSG = 0
MAX_VALUE_CHARS = 4096
KEPT_LOGS = 10_000
KEPT_LOG_SECONDS = 7 * 86_400
#: Characters of a device's run log kept (its newest lines).
MAX_RUN_LOG = 64 * 1024


@dataclass(frozen=True)
class Forwarding:
    """Where a device's product forwards its messages."""

    vendor_id: str
    product_id: str
    queue_type: int
    msg_types: int
    target: str


def stream_key(vendor_id: str, topic: str) -> str:
    """The Redis Stream a vendor's MsgQueueType 2 queue named ``topic`` writes to."""
    return f"iotvideo:mq:{vendor_id}:{topic}"


def queue_target(vendor_id: str, queue_type: int, topic: str) -> str:
    """The outbox target of a queue: ``stream:<key>`` (type 2) or ``webhook:<topic>``."""
    return f"stream:{stream_key(vendor_id, topic)}" if queue_type == 2 else f"webhook:{topic}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    out = []
    for section, objects in new.items():
        if section not in LOG_TYPES or not isinstance(objects, dict):
            continue
        before = old.get(section) or {}
        for name, obj in objects.items():
            if before.get(name) != obj:
                out.append((section, name, before.get(name), obj))
    return out


def _online_value(obj: Any) -> Any:
    return obj.get("stVal") if isinstance(obj, dict) else obj


async def record_changes(
    conn: AsyncConnection,
    tid: str,
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    now: int,
    traced: bool,
    forwarding: Forwarding | None,
) -> None:
    """Trace rows and forwarded messages for what changed from ``old`` to ``new``."""
    changes = _changed(old, new)
    if not changes:
        return
    if traced:
        rows = []
        for section, name, before, after in changes:
            online = (section, name) == ("ProReadonly", "_online")
            rows.append(
                {
                    "tid": tid,
                    "at": now,
                    "log_type": ONLINE_LOG if online else LOG_TYPES[section],
                    "data_object": f"{section}.{name}"[:255],
                    "old_value": _text(before),
                    "new_value": _text(after),
                }
            )
        await conn.execute(insert(device_logs), rows)
    if forwarding is not None:
        messages = []
        for section, name, before, after in changes:
            if (section, name) == ("ProReadonly", "_online"):
                state = _online_value(after)
                kind = "device.offline" if state == 0 else "device.online"
                msg_type, data = ONLINE_MSG, {"online": state}
            elif section == "Event":
                msg_type, kind = MSG_TYPES[section], "device.event"
                data = {"topic": name, "value": _online_value(after)}
            else:
                msg_type, kind = MSG_TYPES[section], "device.property"
                data = {"path": f"{section}.{name}", "value": after, "old": before}
            if forwarding.msg_types >> msg_type & 1:
                messages.append(_message(forwarding, tid, kind, {"msgType": msg_type, **data}, now))
        if messages:
            await conn.execute(insert(webhook_outbox), messages)


def _message(f: Forwarding, tid: str, kind: str, data: dict[str, Any], now: int) -> dict[str, Any]:
    return {
        "vendor_id": f.vendor_id,
        "msg_id": "msg_" + secrets.token_hex(12),
        "kind": kind,
        "payload": {"tid": tid, "productId": f.product_id, **data},
        "created_at": now,
        "next_at": now,
        "attempts": 0,
        "target": f.target,
    }


async def log_link_message(
    conn: AsyncConnection, tid: str, direction: str, op: str, data: Any, *, now: int
) -> None:
    """A traced device's link message that changes no state (LogType 7): ``up`` from the
    device, ``down`` to it."""
    await conn.execute(
        insert(device_logs).values(
            tid=tid,
            at=now,
            log_type=OTHER_LOG,
            data_object=f"{direction}:{op}"[:255],
            old_value="",
            new_value=_text(data),
        )
    )


async def append_run_log(conn: AsyncConnection, tid: str, text: str, *, now: int) -> None:
    """Add a device's uploaded log lines; the newest :data:`MAX_RUN_LOG` characters stay."""
    kept = await conn.scalar(select(device_runlogs.c.text).where(device_runlogs.c.tid == tid))
    joined = (kept or "") + (text if text.endswith("\n") else text + "\n")
    if len(joined) > MAX_RUN_LOG:
        joined = joined[-MAX_RUN_LOG:]
        joined = joined[joined.find("\n") + 1 :] or joined  # from a whole line
    if kept is None:
        await conn.execute(insert(device_runlogs).values(tid=tid, text=joined, updated_at=now))
    else:
        await conn.execute(
            update(device_runlogs)
            .where(device_runlogs.c.tid == tid)
            .values(text=joined, updated_at=now)
        )


async def purge_logs(conn: AsyncConnection, *, now: int, tids: Sequence[str] = ()) -> int:
    """Drop trace rows older than :data:`KEPT_LOG_SECONDS`, and past each traced device's
    newest :data:`KEPT_LOGS` (all traced devices, or ``tids``)."""
    done = await conn.execute(delete(device_logs).where(device_logs.c.at < now - KEPT_LOG_SECONDS))
    purged = done.rowcount or 0
    if not tids:
        tids = list(await conn.scalars(select(devices.c.tid).where(devices.c.traced_since > 0)))
    for tid in tids:
        count = await conn.scalar(select(func.count()).where(device_logs.c.tid == tid)) or 0
        if count <= KEPT_LOGS:
            continue
        cut = await conn.scalar(
            select(device_logs.c.id)
            .where(device_logs.c.tid == tid)
            .order_by(device_logs.c.id.desc())
            .offset(KEPT_LOGS)
            .limit(1)
        )
        done = await conn.execute(
            delete(device_logs).where(device_logs.c.tid == tid, device_logs.c.id <= cut)
        )
        purged += done.rowcount or 0
    return purged
