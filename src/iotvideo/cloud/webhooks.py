"""The vendor's notification webhook: what happens to its devices, pushed to its backend
(to send a phone notification, say), signed the Standard Webhooks way, retried until it
is taken.

Set with ``iotvideo cloud vendor events VENDOR URL`` (which prints the signing secret,
``whsec_...``). Each notification is ``POST URL`` with JSON ``{"type", "timestamp",
"data"}`` and the headers ``webhook-id`` (the same on every retry: deduplicate on it),
``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.body)>``
(key: the base64 after ``whsec_``), as every Standard Webhooks library checks them.

Types: ``device.online`` / ``device.offline`` ``{"tid"}``; ``device.event`` ``{"tid",
"topic", "value", "seq"}`` (thing-model events); ``vas.event`` ``{"tid", "chn", "alarmId",
"alarmType", "start", "end", "imgUrl"}`` (cloud events with their picture); ``ota.result``
``{"tid", "version"}`` (a device reporting a new firmware version); ``netcfg.result``
``{"tid", "accessId", "code"}`` (a device presented a user's bind token: 0 joined, 21101
token unusable, 21102 the device has another owner).

Durable: a notification is written to the ``webhook_outbox`` table in the transaction of
the change it reports, and a sender in every instance takes due ones (each claimed by one
instance at a time), posts them, and retries failures with backoff (1 s doubling to an
hour) for a day; then it is dropped, logged and counted. A 2xx answer within 10 s is
taken; anything else is retried.

The same outbox carries a product's forwarded messages (SetMessageQueue,
:mod:`iotvideo.cloud.vendor.queues`): a row's ``target`` sends it to the webhook with its
queue's topic (``webhook:<topic>``), or adds it to a Redis Stream (``stream:<key>``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud.db import Database, among
from iotvideo.cloud.db.tables import devices, vendors, webhook_outbox
from iotvideo.cloud.metrics import Metrics
from iotvideo.cloud.outages import Outages, database_unavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["WebhookSender", "enqueue", "new_secret", "sign", "signed_headers"]

log = logging.getLogger("iotvideo.cloud.webhooks")

#: Seconds a notification is retried, the longest wait between tries, and the answer time.
GIVE_UP_AFTER = 86_400
MAX_BACKOFF = 3_600
TIMEOUT = 10.0
#: Seconds one instance holds a notification it is sending (others leave it alone).
CLAIM = 60
#: About how many entries a message queue's Redis Stream keeps.
STREAM_LENGTH = 100_000


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<signature>`` of a body, as Standard Webhooks defines it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


#: A notification to queue: the device, the kind, its data, when (unix seconds).
Notice = tuple[str, str, dict[str, Any], int]


async def enqueue(
    conn: AsyncConnection, tid: str, kind: str, data: dict[str, Any], *, now: int
) -> None:
    """Queue a notification about ``tid`` for its vendor, in the caller's transaction
    (nothing when the vendor has no notification URL)."""
    await enqueue_many(conn, [(tid, kind, data, now)])


async def enqueue_many(conn: AsyncConnection, notices: Sequence[Notice]) -> None:
    """Queue notifications in the caller's transaction, each for its device's vendor
    (none for a vendor without a notification URL): two statements whatever their number
    (a batch of logins and logouts queues one per device)."""
    if not notices:
        return
    tids = {tid for tid, *_ in notices}
    listening: dict[str, str] = dict(
        (
            await conn.execute(
                select(devices.c.tid, vendors.c.vendor_id)
                .join(vendors, devices.c.vendor_id == vendors.c.vendor_id)
                .where(
                    among(conn, devices.c.tid, tids),
                    vendors.c.events_url != "",
                )
            )
        ).all()
    )
    rows = [
        {
            "vendor_id": listening[tid],
            "msg_id": "msg_" + secrets.token_hex(12),
            "kind": kind,
            "payload": {"tid": tid, **data},
            "created_at": now,
            "next_at": now,
            "attempts": 0,
        }
        for tid, kind, data, now in notices
        if tid in listening
    ]
    if rows:
        await conn.execute(insert(webhook_outbox), rows)


class WebhookSender:
    """Posts due notifications; one per instance (``wake()`` after queuing for speed)."""

    def __init__(
        self,
        db: Database,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float],
        metrics: Metrics,
        outages: Outages,
        poll: float = 1.0,
        streams: Redis | None = None,
    ) -> None:
        """``streams``: the Redis of message queues of MsgQueueType 2 (None: no Redis)."""
        self.db, self.http, self.clock = db, http, clock
        self.streams = streams
        self.metrics, self.outages, self.poll = metrics, outages, poll
        #: Notifications not delivered yet (due or backing off), at the last look.
        self.pending = 0
        self._wake = asyncio.Event()
        self.sent = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                busy = await self.send_due()
            except Exception as exc:
                if not database_unavailable(exc):
                    log.exception("webhook sender failed; trying again")
                busy = False
            if not busy:
                self._wake.clear()
                try:
                    async with asyncio.timeout(self.poll):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def send_due(self, limit: int = 50) -> bool:
        """Send what is due now; True if there may be more."""
        now = int(self.clock())
        async with self.db.read() as conn:
            self.pending = (
                await conn.scalar(
                    select(func.count())
                    .select_from(webhook_outbox)
                    .where(
                        webhook_outbox.c.delivered_at.is_(None),
                        webhook_outbox.c.failed_at.is_(None),
                    )
                )
            ) or 0
            due = list(
                await conn.execute(
                    select(
                        webhook_outbox,
                        vendors.c.events_url,
                        vendors.c.webhook_secret,
                    )
                    .select_from(
                        webhook_outbox.join(
                            vendors, vendors.c.vendor_id == webhook_outbox.c.vendor_id
                        )
                    )
                    .where(
                        webhook_outbox.c.delivered_at.is_(None),
                        webhook_outbox.c.failed_at.is_(None),
                        webhook_outbox.c.next_at <= now,
                    )
                    .order_by(webhook_outbox.c.id)
                    .limit(limit)
                )
            )
        if not due:
            return False
        slots = asyncio.Semaphore(8)  # a few at a time: the database pool is shared

        async def one(row: Any) -> None:
            async with slots:
                await self._send(row, now)

        await asyncio.gather(*(one(row) for row in due))
        return len(due) == limit

    async def _add_to_stream(self, key: str, row: Any, body: bytes) -> str:
        """XADD a forwarded message to its Redis Stream; the error, or ""."""
        if self.streams is None:
            return "this cloud runs without Redis: a Redis Stream queue cannot be served"
        from redis.exceptions import RedisError  # the redis extra is installed: streams is set

        fields: dict[Any, Any] = {  # (redis-py's own key and value union)
            "id": row.msg_id,
            "type": row.kind,
            "timestamp": str(row.created_at),
            "data": json.dumps(row.payload, separators=(",", ":")),
        }
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.streams.xadd(key, fields, maxlen=STREAM_LENGTH, approximate=True)
        except (RedisError, OSError, TimeoutError) as exc:
            return type(exc).__name__
        return ""

    async def _send(self, row: Any, now: int) -> None:
        async with self.db.begin() as conn:  # claim it: no other instance sends it now
            claimed = await conn.execute(
                update(webhook_outbox)
                .where(and_(webhook_outbox.c.id == row.id, webhook_outbox.c.next_at == row.next_at))
                .values(next_at=now + CLAIM)
            )
        if claimed.rowcount != 1:
            return
        body = json.dumps(
            {"type": row.kind, "timestamp": row.created_at, "data": row.payload},
            separators=(",", ":"),
        ).encode()
        target: str = row.target or ""
        error = ""
        gone = False  # where it goes no longer exists: not retried
        if target.startswith("stream:"):
            error = await self._add_to_stream(target.removeprefix("stream:"), row, body)
            gone = self.streams is None
        elif not row.events_url:
            error, gone = "the vendor removed its notification URL", True
        else:
            headers = signed_headers(row.webhook_secret, row.msg_id, int(self.clock()), body)
            if target.startswith("webhook:"):  # a product's message queue (SetMessageQueue)
                headers["x-iotvideo-topic"] = target.removeprefix("webhook:")
            try:
                response = await self.http.post(
                    row.events_url, content=body, headers=headers, timeout=TIMEOUT
                )
                if not 200 <= response.status_code < 300:
                    error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
        attempts = row.attempts + 1
        values: dict[str, Any]
        if not error:
            values = {"delivered_at": int(self.clock()), "attempts": attempts}
            self.sent += 1
        else:
            self.metrics.webhook_failures.inc()
            later = int(self.clock()) + min(MAX_BACKOFF, 2 ** min(attempts - 1, 12))
            values = {"attempts": attempts, "next_at": later, "last_error": error[:200]}
            if later - row.created_at > GIVE_UP_AFTER or gone:
                values["failed_at"] = int(self.clock())
                log.warning(
                    "webhook %s (%s) dropped after %d tries: %s",
                    row.msg_id,
                    row.kind,
                    attempts,
                    error,
                )
            else:
                log.info(
                    "webhook %s to %s failed (%s); retry in %d s",
                    row.msg_id,
                    row.events_url,
                    error,
                    later - int(self.clock()),
                )
        async with self.db.begin() as conn:
            await conn.execute(
                update(webhook_outbox).where(webhook_outbox.c.id == row.id).values(values)
            )
