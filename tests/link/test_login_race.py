"""A write that lands while its device is logging in: the login reply carries the
ProWritable values read before that write was stored, so the write must reach the device
after the reply, or the reply's older value undoes it on the device (seen under load in
tests/link/test_fleet_faults.py: setVal 146 acknowledged, stVal and the device at 0)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from iotvideo.cloud.link.device_session import DeviceSession
from tests.inproc import Clock, inproc_cloud
from tests.link.world import World, app_sdk, device_client, eventually, make_world


async def test_a_write_relayed_during_the_login_lands_after_the_login_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with inproc_cloud(tmp_path, Clock()) as cloud:
        world: World = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = world.device.tid
        relayed = asyncio.Event()
        writes: list[asyncio.Task[Any]] = []
        mark_online = DeviceSession._mark_online
        on_request = DeviceSession.on_request

        def noting(self: DeviceSession, *args: Any) -> None:
            on_request(self, *args)
            relayed.set()

        async def racing(self: DeviceSession, versions: dict[str, Any]) -> dict[str, Any]:
            writable = await mark_online(self, versions)  # read: nightMode 0
            if not writes:  # the first login only: an app writes now, before the reply
                write = self.ctx.messaging.write(tid, "ProWritable.nightMode", '{"setVal": 2}')
                writes.append(asyncio.ensure_future(write))
                await relayed.wait()  # relayed to this session, before the reply
            return writable

        monkeypatch.setattr(DeviceSession, "_mark_online", racing)
        monkeypatch.setattr(DeviceSession, "on_request", noting)
        applied: list[int] = []

        def install(dc: Any) -> None:
            dc.on_write("nightMode")(lambda value: applied.append(value) or value)

        async with (
            device_client(cloud.url, world.device, install) as device,
            app_sdk(cloud.url, world.owner) as sdk,
        ):
            result = await writes[0]
            assert result["delivered"] and result["value"]["stVal"] == 2

            async def settled() -> dict[str, Any]:
                value: dict[str, Any] = await sdk.message.read_property(
                    tid, "ProWritable.nightMode"
                )
                assert value["setVal"] == value["stVal"] == 2, (value, applied)
                return value

            await eventually(settled)
            assert device.writable["nightMode"] == 2 and applied[-1] == 2
