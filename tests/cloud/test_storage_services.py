"""Cloud-storage services through the official client: buy, renew, describe, deliver,
refund; and their status over time on a clock the test controls."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.official import call, client, refused
from tests.inproc import Clock, inproc_cloud
from tests.support import Cloud, snapshot

DAY = 86_400
MONTH = 30 * DAY


@pytest.fixture
def api(cloud: Cloud) -> Any:
    return client(cloud, cloud.new_key())


def _devices(api: Any, n: int = 2) -> list[str]:
    pid = call(
        api, "CreateProduct", ProductModel="ipc", ProductName="cam", ProductDescription="cam"
    ).Data.ProductId
    return [d.Tid for d in call(api, "CreateDevices", ProductId=pid, Number=n).Data]


def test_buy_renew_refund_and_deliver(api: Any, cloud: Cloud) -> None:
    cam1, cam2 = _devices(api)
    user = call(api, "CreateAppUsr", CunionId="buyer").AccessId
    bought = call(api, "CreateStorageService", PkgId="yc1m3d", Tid=cam1, AccessId=user)
    assert not bought.IsRenew and bought.Status == 1 and bought.Tid == cam1
    assert bought.EndTime - bought.StartTime == MONTH
    (first,) = bought.Data
    assert (first.PkgId, first.Status) == ("yc1m3d", 1)

    # Buying again for the same channel renews: the new orders follow the last one.
    renewed = call(api, "CreateStorageService", PkgId="yc1m7d", Tid=cam1, OrderCount=2)
    assert renewed.IsRenew and renewed.ServiceId == bought.ServiceId
    assert renewed.EndTime == bought.EndTime + 2 * MONTH
    later = [o for o in renewed.Data if o.OrderId != first.OrderId]
    assert [o.Status for o in later] == [2, 2]  # not started yet
    assert later[0].StartTime == bought.EndTime

    # A refunded order no longer counts.
    refunded = call(
        api, "RefundStorageService", ServiceId=bought.ServiceId, OrderId=later[1].OrderId
    )
    assert refunded.EndTime == bought.EndTime + MONTH
    assert {o.OrderId: o.Status for o in refunded.Data}[later[1].OrderId] == 5
    refused(
        "FailedOperation",
        call,
        api,
        "RefundStorageService",
        ServiceId=bought.ServiceId,
        OrderId=later[1].OrderId,
    )
    unfinished = call(api, "DescribeStorageService", ServiceId=bought.ServiceId)
    assert [o.Status for o in unfinished.Data] == [1, 2]

    # The other channel of the same device has a service of its own.
    other = call(api, "CreateStorageService", PkgId="yc1m30d", Tid=cam1, ChnNum=2)
    assert not other.IsRenew and other.ServiceId != bought.ServiceId and other.ChnNum == 2

    # Deliver what is left to the second camera.
    moved = call(api, "DeliverStorageService", SrcServiceId=bought.ServiceId, Tid=cam2)
    assert moved.SrcServiceId == bought.ServiceId and moved.Tid == cam2
    assert [o.Status for o in moved.Data] == [1, 3]
    assert moved.EndTime == bought.EndTime + MONTH
    source = call(api, "DescribeStorageService", ServiceId=bought.ServiceId, GetFinishedOrder=True)
    assert {o.Status for o in source.Data} == {5, 6} and source.Status == 3
    refused(
        "FailedOperation",
        call,
        api,
        "DeliverStorageService",
        SrcServiceId=bought.ServiceId,
        Tid=cam2,
        ChnNum=1,
    )
    refused(
        "ResourceInUse", call, api, "DeliverStorageService", SrcServiceId=other.ServiceId, Tid=cam2
    )


def test_create_storage_buys_one_order_for_the_camera(api: Any, cloud: Cloud) -> None:
    """The reference's older CreateStorage: one order for channel 0, answered with
    nothing but a RequestId; the service it made is the one CreateStorageService renews."""
    (cam,) = _devices(api, 1)
    before = snapshot(cloud.db)
    refused("InvalidParameterValue", call, api, "CreateStorage", PkgId="yc9m9d", Tid=cam)
    refused("ResourceNotFound", call, api, "CreateStorage", PkgId="ye1m3d", Tid="nope")
    refused("MissingParameter", call, api, "CreateStorage", Tid=cam)
    assert snapshot(cloud.db) == before
    call(api, "CreateStorage", PkgId="ye1m3d", Tid=cam, UserTag="vendor-user-7")
    renewed = call(api, "CreateStorageService", PkgId="ye1m3d", Tid=cam)
    assert renewed.IsRenew and renewed.ChnNum == 0
    assert [o.PkgId for o in renewed.Data] == ["ye1m3d", "ye1m3d"]
    assert renewed.EndTime - renewed.StartTime == 2 * MONTH


def test_refusals_change_nothing(api: Any, cloud: Cloud) -> None:
    (cam,) = _devices(api, 1)
    refused("InvalidParameterValue", call, api, "CreateStorageService", PkgId="yc9m9d", Tid=cam)
    refused("ResourceNotFound", call, api, "CreateStorageService", PkgId="yc1m3d", Tid="nope")
    refused(
        "InvalidParameterValue",
        call,
        api,
        "CreateStorageService",
        PkgId="yc1m3d",
        Tid=cam,
        OrderCount=0,
    )
    refused("ResourceNotFound", call, api, "DescribeStorageService", ServiceId="cs0")
    bought = call(api, "CreateStorageService", PkgId="yc1m3d", Tid=cam)
    assert not bought.IsRenew  # the refused calls made no service
    # Another vendor does not see it.
    stranger = client(cloud, cloud.new_key())
    refused(
        "ResourceNotFound", call, stranger, "DescribeStorageService", ServiceId=bought.ServiceId
    )
    refused(
        "ResourceNotFound",
        call,
        api,
        "RefundStorageService",
        ServiceId=bought.ServiceId,
        OrderId="ord0",
    )


async def test_status_goes_in_use_to_renew_to_expired(tmp_path: Path) -> None:
    clock = Clock()
    # The client signs with real time while the cloud's clock jumps months: a wide skew, and
    # identical requests a "month" apart are not replays here.
    options = {"signature_max_skew": 10**8, "signature_repeat_window": 10**9}
    async with inproc_cloud(tmp_path, clock, **options) as cloud:
        api = client(cloud, await asyncio.to_thread(cloud.new_key))
        (cam,) = await asyncio.to_thread(_devices, api, 1)

        def status(service_id: str) -> int:
            return int(call(api, "DescribeStorageService", ServiceId=service_id).Status)

        bought = await asyncio.to_thread(call, api, "CreateStorageService", PkgId="yc1m3d", Tid=cam)
        assert await asyncio.to_thread(status, bought.ServiceId) == 1
        clock.offset = MONTH + DAY  # ended; its last three days of video are still kept
        assert await asyncio.to_thread(status, bought.ServiceId) == 2
        clock.offset = MONTH + 3 * DAY + 1  # nothing kept any more
        assert await asyncio.to_thread(status, bought.ServiceId) == 3
        # Buying now starts a new service, not a renewal.
        again = await asyncio.to_thread(call, api, "CreateStorageService", PkgId="yc1m3d", Tid=cam)
        assert not again.IsRenew and again.ServiceId != bought.ServiceId
