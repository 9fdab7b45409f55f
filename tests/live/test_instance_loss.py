"""Media sessions and the link: media flows peer to peer and outlives the link.

The cloud instance holding the app's link dies during card playback and during live view
with talk (two instances on one PostgreSQL and Redis; SIGKILL): the player keeps playing,
its status says so the whole time (no ``stopped`` while frames arrive), its controls go
on over the peer connection, and the app's link comes back on the other instance. The
device's own link drops: the player asks the device over the peer connection and plays
on, or, when the device does not answer, fails with 20008 and its frame loops end."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from iotvideo.app import IoTVideo, LinkStatus
from iotvideo.app.modules import ToneCapture
from iotvideo.app.playback import PlaybackPlayer
from iotvideo.app.player import LivePlayer, MonitorPlayer, PlayerStatus
from iotvideo.device.card import Card, fill_test_recording
from iotvideo.device.media import DeviceMedia
from iotvideo.protocol.errors import ErrorCode
from tests.link.world import World, app_sdk, device_client, make_world
from tests.live.helpers import stamp_of
from tests.support import Cloud

pytestmark = pytest.mark.postgres

#: How long the player is watched after the kill: past the 12 s after which a player was
#: seen to report ``stopped``, and past the dead instance's reaping (1.5 s here).
WATCH_SECONDS = 14


@pytest.fixture
def world_one(sqlite_cloud: Cloud) -> World:
    return make_world(sqlite_cloud, devices=1)


class Statuses:
    """What the player's delegate is told, with when."""

    def __init__(self, player: MonitorPlayer) -> None:
        self.seen: list[PlayerStatus] = []
        player.delegate = self

    def player_did_update_status(self, _player: MonitorPlayer, status: PlayerStatus) -> None:
        self.seen.append(status)


@asynccontextmanager
async def _app_on_a(a: Cloud, b: Cloud, world: World) -> AsyncIterator[IoTVideo]:
    async with app_sdk([a.url, b.url], world.owner) as sdk:
        yield sdk


async def _kill_and_watch(a: Cloud, sdk: IoTVideo, player: MonitorPlayer) -> int:
    """Kill instance A; count the frames of ``WATCH_SECONDS`` after it, checking that the
    burned-in clock keeps advancing; return the count once the app's link is back."""
    back = asyncio.Event()
    sdk.add_status_listener(lambda status: status is LinkStatus.ONLINE and back.set())
    a.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(a.proc.wait)
    frames, last = 0, -1
    until = time.monotonic() + WATCH_SECONDS
    async with asyncio.timeout(WATCH_SECONDS + 10):
        async for frame in player.frames():
            stamp = stamp_of(frame)
            assert stamp.time_ms > last
            last, frames = stamp.time_ms, frames + 1
            if time.monotonic() > until:
                break
        await back.wait()
    return frames


async def test_live_with_talk_outlives_the_app_s_instance(
    pair: tuple[Cloud, Cloud, World],
) -> None:
    a, b, world = pair
    async with device_client([b.url], world.device) as dc:
        media = DeviceMedia(dc, video="testsrc:?fps=15")
        try:
            async with _app_on_a(a, b, world) as sdk:
                player = LivePlayer(world.device.tid, sdk=sdk)
                statuses = Statuses(player)
                await player.play()
                await player.start_talking(ToneCapture(440))
                (session,) = media.sessions
                frames = await _kill_and_watch(a, sdk, player)
                assert frames >= 10 * WATCH_SECONDS  # 15 fps, with room for a slow machine
                heard = session.talk_samples
                # The device hears the app all along: 8 kHz or more of samples a second.
                assert heard >= 8000 * (WATCH_SECONDS - 2), heard
                assert player.status is PlayerStatus.PLAYING and player.talking
                assert PlayerStatus.STOPPED not in statuses.seen
                assert PlayerStatus.FAILED not in statuses.seen
                await player.stop()
                assert statuses.seen[-1] is PlayerStatus.STOPPED
        finally:
            await media.close()


async def test_card_playback_outlives_the_app_s_instance(
    pair: tuple[Cloud, Cloud, World], tmp_path: Path
) -> None:
    a, b, world = pair
    folder = tmp_path / "card"
    start = (int(time.time()) - 3600) * 1000
    card = Card(folder, file_seconds=10)
    card.mount()
    await asyncio.to_thread(fill_test_recording, card, start, 60)
    async with device_client([b.url], world.device) as dc:
        media = DeviceMedia(dc, video="testsrc:?fps=15", card=card, card_recording=False)
        try:
            async with _app_on_a(a, b, world) as sdk:
                player = PlaybackPlayer(world.device.tid, None, start + 1000, sdk=sdk)
                statuses = Statuses(player)
                await player.play()
                frames = await _kill_and_watch(a, sdk, player)
                assert frames >= 10 * WATCH_SECONDS
                # Its controls go peer to peer: they work without the dead instance.
                await player.pause()
                assert player.status is PlayerStatus.PAUSED
                await player.resume()
                assert player.status is PlayerStatus.PLAYING
                assert PlayerStatus.STOPPED not in statuses.seen
                assert PlayerStatus.FAILED not in statuses.seen
                await player.stop()
        finally:
            await media.close()
            card.close()


async def test_a_device_whose_link_drops_keeps_its_media_session(world_one: World) -> None:
    """The device's own link drops (the cloud pushes ``_online`` 0, then 1 once it is back)
    while its media flows peer to peer: the player asks the device over the peer
    connection whether it is still there, and plays on."""
    world = world_one
    async with device_client(world.cloud.url, world.device) as dc:
        media = DeviceMedia(dc, video="testsrc:?fps=15")
        try:
            async with app_sdk(world.cloud.url, world.owner) as sdk:
                player = MonitorPlayer(world.device.tid, sdk=sdk)
                statuses = Statuses(player)
                await player.play()
                offline = asyncio.Event()
                sdk.message.add_listener(
                    lambda m: (
                        m.name == "ProReadonly._online"
                        and isinstance(m.value, dict)
                        and m.value.get("stVal") == 0
                        and offline.set()
                    )
                )
                await dc.drop_connection()
                async with asyncio.timeout(10):
                    await offline.wait()
                frames, last = 0, -1
                async with asyncio.timeout(15):
                    async for frame in player.frames():
                        assert stamp_of(frame).time_ms > last
                        last, frames = stamp_of(frame).time_ms, frames + 1
                        if frames == 60:  # 4 s at 15 fps
                            break
                assert player.status is PlayerStatus.PLAYING
                assert PlayerStatus.FAILED not in statuses.seen
                await player.stop()
        finally:
            await media.close()


async def test_a_device_gone_for_good_ends_the_session_and_its_frames(
    world_one: World,
) -> None:
    """The device's link drops and it does not answer over the peer connection either:
    the player fails with 20008 and a ``frames()`` loop ends (it waited forever when its
    queue was full); a later ``frames()`` returns at once."""
    world = world_one
    async with device_client(world.cloud.url, world.device) as dc:
        media = DeviceMedia(dc, video="testsrc:?fps=15")
        try:
            async with app_sdk(world.cloud.url, world.owner) as sdk:
                player = MonitorPlayer(world.device.tid, sdk=sdk)
                await player.play()
                frames = player.frames(maxsize=2)
                assert await anext(frames) is not None
                (session,) = media.sessions
                session._ctl.remove_all_listeners("message")  # deaf: answers nothing
                await dc.drop_connection()
                async with asyncio.timeout(15):
                    async for _frame in frames:  # frames flow until the ping goes unanswered
                        pass
                assert player.status is PlayerStatus.FAILED
                assert player.error is not None
                assert player.error.code == ErrorCode.IVTermErr_msg_calling_timeout_disconnect
                assert [frame async for frame in player.frames()] == []
        finally:
            await media.close()
