"""Cloud-storage services: packages, order and service states, kept from the clock.

Packages (the reference platform's 14 PkgIds): ``y`` then ``c`` (continuous: everything
is recorded) or ``e`` (events: only the video around events is kept), then the length
of one order (``1m`` a month of 30 days, ``1y`` a year of 365, ``1w`` a week), then the
days the video is kept (``3d``, ``7d``, ``30d``): ``yc1m3d`` ... ``ye1w7d``. A
service's kind (the app's ``curOrderPkgType``: 1 continuous, 2 events) is that of the
order covering now. A service's start and end are those of its counted orders (not
refunded, not moved away); its status:

- 1 in use: an order covers now (or one is still to come);
- 2 to renew: every order has ended, but recordings made while they ran are still kept
  (now < end + storage days); renewing makes them visible again;
- 3 expired: nothing is kept any longer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud.db.tables import storage_orders, storage_services

__all__ = [
    "MONTH",
    "PACKAGES",
    "OrderStatus",
    "Package",
    "PackageKind",
    "ServiceStatus",
    "ServiceView",
    "channel_view",
    "order_status",
    "service_view",
]

DAY = 86_400
MONTH = 30 * DAY
#: One order's length, by the PkgId's middle part.
LENGTHS = {"1m": MONTH, "1y": 365 * DAY, "1w": 7 * DAY}


class PackageKind(IntEnum):
    """What a package records (the seed's ``curOrderPkgType``)."""

    CONTINUOUS = 1
    EVENTS = 2


@dataclass(frozen=True)
class Package:
    kind: PackageKind
    #: Seconds one order lasts.
    length: int
    #: Days the video is kept.
    days: int


def _packages() -> dict[str, Package]:
    made = {}
    for letter, kind in (("c", PackageKind.CONTINUOUS), ("e", PackageKind.EVENTS)):
        for span, days in (("1m", 3), ("1m", 7), ("1m", 30), ("1y", 3), ("1y", 7),
                           ("1y", 30), ("1w", 7)):  # fmt: skip
            made[f"y{letter}{span}{days}d"] = Package(kind, LENGTHS[span], days)
    return made


#: PkgId -> what it is.
PACKAGES: dict[str, Package] = _packages()


class ServiceStatus(IntEnum):
    IN_USE = 1
    TO_RENEW = 2
    EXPIRED = 3


class OrderStatus(IntEnum):
    """StorageOrder.Status of the official API."""

    IN_USE = 1
    NOT_STARTED = 2
    MOVED_IN_NOT_STARTED = 3
    ENDED = 4
    REFUNDED = 5
    MOVED_AWAY = 6


def order_status(order: Any, now: int) -> OrderStatus:
    if order.refunded_at is not None:
        return OrderStatus.REFUNDED
    if order.moved_to is not None:
        return OrderStatus.MOVED_AWAY
    if now >= order.end_time:
        return OrderStatus.ENDED
    if now >= order.start_time:
        return OrderStatus.IN_USE
    return OrderStatus.MOVED_IN_NOT_STARTED if order.moved_from else OrderStatus.NOT_STARTED


def counted(order: Any) -> bool:
    """Does the order still belong to its service (not refunded, not moved away)?"""
    return order.refunded_at is None and order.moved_to is None


@dataclass(frozen=True)
class ServiceView:
    """What a service amounts to now."""

    status: ServiceStatus
    start_time: int
    end_time: int
    #: Days of video kept, by the latest counted order (0 when there is none).
    storage_days: int
    #: The order covering now, or the last one (None when none is counted).
    current: Any
    #: The earliest time whose recordings may still be listed (playbackStartTime).
    playback_start: int
    #: What the current order records (continuous when there is none).
    kind: PackageKind = PackageKind.CONTINUOUS


def service_view(orders: Sequence[Any], now: int) -> ServiceView:
    live = sorted((o for o in orders if counted(o)), key=lambda o: o.start_time)
    if not live:
        return ServiceView(ServiceStatus.EXPIRED, 0, 0, 0, None, 0)
    start, end = live[0].start_time, max(o.end_time for o in live)
    current = next((o for o in live if o.start_time <= now < o.end_time), live[-1])
    days = current.storage_days
    if now < end:
        status = ServiceStatus.IN_USE
    elif now < end + days * DAY:
        status = ServiceStatus.TO_RENEW
    else:
        status = ServiceStatus.EXPIRED
    playback_start = max(start, now - days * DAY)
    package = PACKAGES.get(str(current.pkg_id))
    kind = package.kind if package is not None else PackageKind.CONTINUOUS
    return ServiceView(status, start, end, days, current, playback_start, kind)


async def channel_view(conn: AsyncConnection, tid: str, chn: int, now: int) -> ServiceView:
    """The state of a device channel's cloud storage (EXPIRED when it never had any)."""
    services = list(
        await conn.scalars(
            select(storage_services.c.service_id).where(
                storage_services.c.tid == tid,
                storage_services.c.chn_num == chn,
                storage_services.c.delivered_to.is_(None),
            )
        )
    )
    best = ServiceView(ServiceStatus.EXPIRED, 0, 0, 0, None, 0)
    for service_id in services:
        orders = list(
            await conn.execute(
                select(storage_orders).where(storage_orders.c.service_id == service_id)
            )
        )
        view = service_view(orders, now)
        if view.status < best.status or (
            view.status == best.status and view.end_time > best.end_time
        ):
            best = view
    return best
