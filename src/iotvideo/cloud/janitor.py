"""Periodic housekeeping: delete access and bind tokens that died more than a day ago,
events past their keeping, and traced devices' messages past their bounds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import delete

from iotvideo.cloud.access import purge_tokens
from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import device_events
from iotvideo.cloud.link.messaging import KEPT_SECONDS
from iotvideo.cloud.outages import Outages
from iotvideo.cloud.provisioning import purge_bind_tokens
from iotvideo.cloud.tracing import purge_logs

__all__ = ["run_janitor"]

log = logging.getLogger("iotvideo.cloud.janitor")


async def run_janitor(
    db: Database, *, clock: Callable[[], float], interval: float, outages: Outages
) -> None:
    """Purge dead tokens now and then every ``interval`` seconds, until cancelled.

    Every cloud instance runs one; the deletes are idempotent, so several at once are fine.
    """
    while True:
        try:
            async with db.begin() as conn:
                purged = await purge_tokens(conn, now=int(clock()))
                purged += await purge_bind_tokens(conn, now=int(clock()))
                # Events kept for offline apps, once older than they are served.
                await conn.execute(
                    delete(device_events).where(device_events.c.t < int(clock()) - KEPT_SECONDS)
                )
                # Traced devices' messages: a week, and at most KEPT_LOGS per device.
                await purge_logs(conn, now=int(clock()))
            if purged:
                log.info("purged %d expired or revoked access tokens", purged)
        except Exception as exc:  # a failed round must not end housekeeping for good
            outages.round_failed("purging access tokens", exc)
        await asyncio.sleep(interval)
