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
from iotvideo.cloud.link.messaging import Messaging
from iotvideo.protocol import link
from iotvideo.protocol.errors import ErrorCode, IVError
from tests.inproc import Clock, inproc_cloud
from tests.link.world import Inbox, World, app_sdk, device_client, eventually, make_world


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


async def test_a_value_applied_but_never_recorded_is_reported_at_the_next_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device applied a write but the cloud could not record it (its database went
    away; the instance that would have tried again died): at its next login the device
    sees that the cloud's confirmed value differs from what it holds and reports it."""
    async with inproc_cloud(tmp_path, Clock()) as cloud:
        world: World = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = world.device.tid
        report = Messaging.report
        lost = {"once": True}

        async def failing(self: Messaging, tid_: str, path: str, *args: Any, **kw: Any) -> Any:
            if path == "ProWritable.nightMode" and args[0] == 2 and lost.pop("once", False):
                raise IVError.of(ErrorCode.IVTermErr_msg_calling_no_srv_addr, "database away")
            return await report(self, tid_, path, *args, **kw)

        monkeypatch.setattr(Messaging, "report", failing)
        monkeypatch.setattr(Messaging, "reconcile", lambda self, tid_: None)  # it died
        sessions: list[DeviceSession] = []
        mark_online = DeviceSession._mark_online

        async def noting(self: DeviceSession, versions: dict[str, Any]) -> dict[str, Any]:
            sessions.append(self)
            return await mark_online(self, versions)

        monkeypatch.setattr(DeviceSession, "_mark_online", noting)
        path = "ProWritable.nightMode"
        async with (
            app_sdk(cloud.url, world.owner) as sdk,
            device_client(cloud.url, world.device) as device,
        ):
            with pytest.raises(IVError):
                await sdk.message.write_property(tid, path, '{"setVal": 2}')
            assert device.writable["nightMode"] == 2
            value = await sdk.message.read_property(tid, path)
            assert (value["setVal"], value["stVal"]) == (2, 0)  # not recorded
            inbox = Inbox(sdk)
            # The link drops (the same device, holding 2, logs in again).
            await sessions[-1].close(link.CLOSE_RETRY, ErrorCode.IVConnError_Disconnected, "x")
            await inbox.property(path, setVal=2, stVal=2)
            assert device.logins == 2
