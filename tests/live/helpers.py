"""A camera with DeviceMedia online and an app logged in, for live-media tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import av

from iotvideo.app import IoTVideo
from iotvideo.app.player import MonitorPlayer
from iotvideo.device import DeviceClient
from iotvideo.device.media import DeviceMedia
from iotvideo.media.testsrc import Stamp, read_stamp
from tests.link.world import Device, User, World, app_sdk, device_client


@dataclass
class Live:
    device: DeviceClient
    media: DeviceMedia
    sdk: IoTVideo


@asynccontextmanager
async def live(
    world: World,
    *,
    user: User | None = None,
    device: Device | None = None,
    **media_options: Any,
) -> AsyncIterator[Live]:
    async with device_client(world.cloud.url, device or world.device) as dc:
        media = DeviceMedia(dc, **media_options)
        try:
            async with app_sdk(world.cloud.url, user or world.owner) as sdk:
                yield Live(dc, media, sdk)
                for connection in list(sdk.connections):
                    await connection.disconnect()
        finally:
            await media.close()


def stamp_of(frame: av.VideoFrame) -> Stamp:
    stamp = read_stamp(frame.to_ndarray(format="rgb24"))
    assert stamp is not None, "the frame carries no test-pattern stamp"
    return stamp


async def take_frames(
    player: MonitorPlayer, count: int, *, until: Callable[[av.VideoFrame], bool] | None = None
) -> list[av.VideoFrame]:
    """The next ``count`` decoded frames (that satisfy ``until``, when given)."""
    frames: list[av.VideoFrame] = []
    async with asyncio.timeout(15):
        async for frame in player.frames():
            if until is None or until(frame):
                frames.append(frame)
                if len(frames) == count:
                    return frames
    raise AssertionError(f"the stream ended after {len(frames)} frames")
