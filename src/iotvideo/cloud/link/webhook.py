"""send_data to the server: the cloud POSTs the app's data to its vendor's webhook.

The webhook gets ``POST <webhook_url>`` with JSON ``{"AccessId", "Url", "Data", "Time"}``
(``Data`` base64) and answers with any body (up to MAX_DATA_SIZE bytes), which goes back
to the app as it is. Configure it with ``iotvideo vendor webhook VENDOR_ID URL``.
"""

from __future__ import annotations

import json
import secrets
import time

import httpx
from sqlalchemy import select

from iotvideo.cloud.db.tables import vendors
from iotvideo.cloud.link.context import LinkContext
from iotvideo.cloud.webhooks import signed_headers
from iotvideo.protocol import link
from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = ["DEFAULT_TIMEOUT", "forward"]

DEFAULT_TIMEOUT = 10.0


def _failed(message: str) -> IVError:
    return IVError.of(ErrorCode.IVMessageError_SendPassSrvErr, message)


async def forward(
    ctx: LinkContext, vendor_id: str, access_id: str, url: str, data: bytes, timeout: float | None
) -> bytes:
    if len(data) > link.MAX_DATA_SIZE:
        raise IVError.of(
            ErrorCode.IVMessageError_ExceedsMaxLength, "data larger than MAX_DATA_SIZE"
        )
    async with ctx.db.read() as conn:
        row = (
            await conn.execute(
                select(vendors.c.webhook_url, vendors.c.webhook_secret).where(
                    vendors.c.vendor_id == vendor_id
                )
            )
        ).first()
    webhook = row.webhook_url if row is not None else ""
    if not webhook:
        raise _failed("the vendor has not configured a webhook for data sent to the server")
    body = {
        "AccessId": access_id,
        "Url": url,
        "Data": link.encode_data(data),
        "Time": int(time.time()),
    }
    content = json.dumps(body, separators=(",", ":")).encode()
    headers = {"content-type": "application/json"}
    if row is not None and row.webhook_secret:  # signed the Standard Webhooks way
        msg_id = "msg_" + secrets.token_hex(12)
        headers = signed_headers(row.webhook_secret, msg_id, int(time.time()), content)
    try:
        response = await ctx.http.post(
            webhook, content=content, headers=headers, timeout=timeout or DEFAULT_TIMEOUT
        )
    except httpx.TimeoutException:
        ctx.metrics.webhook_failures.inc()
        raise IVError.of(
            ErrorCode.IVMessageError_timeout, "the vendor's webhook did not answer in time"
        ) from None
    except httpx.HTTPError as exc:
        ctx.metrics.webhook_failures.inc()
        raise _failed(f"the vendor's webhook could not be reached: {type(exc).__name__}") from None
    if response.status_code >= 300:
        ctx.metrics.webhook_failures.inc()
        raise _failed(f"the vendor's webhook answered HTTP {response.status_code}")
    if len(response.content) > link.MAX_DATA_SIZE:
        raise _failed("the vendor's webhook answered more than MAX_DATA_SIZE bytes")
    return response.content
