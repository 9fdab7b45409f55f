"""The blocking facade, as a script would use it (the device runs in another thread)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from iotvideo.app.sync import SyncIoTVideo
from iotvideo.device import DeviceClient
from iotvideo.protocol.errors import IVError
from tests.link.world import World, fast_backoff


def test_sync_facade(world: World) -> None:
    online = threading.Event()
    stop = threading.Event()

    def device() -> None:
        async def run() -> None:
            dc = DeviceClient(world.device.certificate, world.cloud.url, backoff=fast_backoff())
            dc.on_action("cameraOn")(lambda v: {"cameraOn": v})
            await dc.start()
            online.set()
            await asyncio.to_thread(stop.wait)
            await dc.stop()

        asyncio.run(run())

    thread = threading.Thread(target=device)
    thread.start()
    try:
        assert online.wait(30)
        with SyncIoTVideo(world.cloud.url) as sdk:
            sdk.register(world.owner.access_id, world.owner.token)
            assert sdk.read_property(world.device.tid, "ProWritable._logLevel.setVal") == 3
            assert sdk.take_action(world.device.tid, "Action.cameraOn", {"ctlVal": 1}) == {
                "cameraOn": 1
            }
            assert (
                sdk.write_property(world.device.tid, "ProWritable.led.setVal", False)["stVal"]
                is False
            )
            with pytest.raises(IVError) as info:
                sdk.read_property(world.device.tid, "Nope")
            assert info.value.code == 20101
    finally:
        stop.set()
        thread.join(30)
