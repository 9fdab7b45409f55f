"""Two-way video, custom data, limits and faults of live connections."""

from __future__ import annotations

import asyncio
from typing import Any

import av
import pytest

from iotvideo.app.player import LivePlayer, MonitorPlayer, PlayerStatus, Transmission
from iotvideo.device.media import MediaSession
from iotvideo.media.webrtc import RTCPeerConnection, rtc_configuration
from iotvideo.protocol import media as wire
from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.world import World
from tests.live.helpers import Live, live, stamp_of, take_frames


async def test_two_way_video_reaches_the_device(world: World) -> None:
    seen: list[av.VideoFrame] = []
    from_camera = [asyncio.Event(), asyncio.Event()]

    def on_video(_session: MediaSession, frame: av.VideoFrame) -> None:
        seen.append(frame)
        from_camera[stamp_of(frame).count >> 16].set()

    previews: list[object] = []
    async with live(world, on_video=on_video) as lv:
        player = LivePlayer(world.device.tid, sdk=lv.sdk)
        player.on_preview = previews.append
        await player.play()
        await player.open_camera()
        await take_frames(player, 3)  # the device's video keeps coming too
        async with asyncio.timeout(10):  # a loaded machine's first frames can come late
            await from_camera[0].wait()
        await player.switch_camera()
        async with asyncio.timeout(10):
            await from_camera[1].wait()
        await player.close_camera()
        await player.stop()
    first = stamp_of(seen[0])
    assert first.count >> 16 == 0  # the first camera's frames came first
    assert (seen[0].width, seen[0].height) == (320, 180)
    assert previews


async def test_custom_data_both_ways_and_its_limits(world: World) -> None:
    def echo(session: MediaSession, data: bytes) -> None:
        session.send(b"echo:" + data[:16] + b"/%d" % len(data))

    async with live(world, on_data=echo) as lv:
        link = Transmission(world.device.tid, sdk=lv.sdk)
        await link.connect()
        assert link.connected
        link.send(b"x" * wire.MAX_PKG_BYTES)
        link.send(b"hello")
        replies = link.received()
        assert await anext(replies) == b"echo:" + b"x" * 16 + b"/64000"
        assert await anext(replies) == b"echo:hello/5"
        with pytest.raises(IVError) as big:
            link.send(b"x" * (wire.MAX_PKG_BYTES + 1))
        assert big.value.code == ErrorCode.IVConnError_ExceedsMaxLength
        with pytest.raises(IVError) as twice:
            await link.connect()
        assert twice.value.code == ErrorCode.IVConnError_Duplicate
        await link.disconnect()
        with pytest.raises(IVError) as closed:
            link.send(b"late")
        assert closed.value.code == ErrorCode.IVConnError_Disconnected


async def test_the_seventeenth_connection_is_refused(world: World) -> None:
    async with live(world) as lv:
        links = [Transmission(world.device.tid, sdk=lv.sdk) for _ in range(wire.MAX_CONNECTION_NUM)]
        await asyncio.gather(*(link.connect() for link in links))
        extra = Transmission(world.device.tid, sdk=lv.sdk)
        with pytest.raises(IVError) as refused:
            await extra.connect()
        assert refused.value.code == ErrorCode.IVConnError_ExceedsMaxNumber
        await links[0].disconnect()
        await extra.connect()  # a freed slot can be used
        assert extra.connected


async def test_the_fifth_viewer_is_refused_and_the_others_play_on(world: World) -> None:
    async with live(world) as lv:
        players = [MonitorPlayer(world.device.tid, sdk=lv.sdk) for _ in range(4)]
        for player in players:
            await player.play()
        fifth = MonitorPlayer(world.device.tid, sdk=lv.sdk)
        with pytest.raises(IVError) as busy:
            await fifth.play()
        assert busy.value.code == ErrorCode.IVTermErr_msg_calling_all_chn_busy
        assert lv.media.viewers == 4
        # One viewer leaves: the others keep playing, and the place is free again.
        await players[0].stop()
        for player in players[1:]:
            before = player.frames_decoded
            await take_frames(player, 5)
            assert player.frames_decoded >= before + 5
        await fifth.play()
        await fifth.wait_playing()


async def test_the_viewer_limit_is_per_channel(world: World) -> None:
    """An NVR with room for one viewer per channel: a viewer of each channel plays; a
    second one of channel 1 is refused (20007) while channel 2's plays on."""
    sources = {"1": ("testsrc:", "none"), "2": ("testsrc:", "none")}
    async with live(world, sources=sources, max_viewers=1) as lv:
        tid = world.device.tid
        first = MonitorPlayer(tid, sdk=lv.sdk, source_id=1)
        second = MonitorPlayer(tid, sdk=lv.sdk, source_id=2)
        await first.play()
        await second.play()
        with pytest.raises(IVError) as busy:
            await MonitorPlayer(tid, sdk=lv.sdk, source_id=1).play()
        assert busy.value.code == ErrorCode.IVTermErr_msg_calling_all_chn_busy
        assert "source 1" in busy.value.message
        assert lv.media.viewers_of("1") == lv.media.viewers_of("2") == 1
        await take_frames(second, 5)


async def test_the_device_going_away_ends_every_player_with_hangup(world: World) -> None:
    async with live(world) as lv:
        players = [MonitorPlayer(world.device.tid, sdk=lv.sdk) for _ in range(2)]
        for player in players:
            await player.play()
            await player.wait_playing()
        await lv.media.close()
        for player in players:
            async with asyncio.timeout(10):
                error = await player.wait_ended()
            assert error is not None and error.code == ErrorCode.IVTermErr_msg_calling_dev_hangup
            assert player.status is PlayerStatus.FAILED
        assert not lv.sdk.connections


async def test_offer_for_an_unknown_source_or_definition_is_refused(world: World) -> None:
    async with live(world) as lv:
        player = MonitorPlayer(world.device.tid, sdk=lv.sdk, source_id=9)
        with pytest.raises(IVError) as unknown:
            await player.play()
        assert unknown.value.code == ErrorCode.IVPlayerError_InvalidParameter
        with pytest.raises(IVError) as bad:
            MonitorPlayer(world.device.tid, sdk=lv.sdk, definition="4k")
        assert bad.value.code == ErrorCode.IVPlayerError_InvalidParameter
        assert lv.media.viewers == 0


async def test_an_offline_device_cannot_be_watched(world: World) -> None:
    async with live(world) as lv:
        offline = world.devices[1]
        await asyncio.to_thread(
            world.vendor,
            "CreateBinding",
            AccessId=world.owner.access_id,
            Tid=offline.tid,
            Role="owner",
        )
        player = MonitorPlayer(offline.tid, sdk=lv.sdk)
        with pytest.raises(IVError) as refused:
            await player.play()
        assert refused.value.code == ErrorCode.IVASrvErr_dst_offline
        assert not lv.sdk.connections


async def _offer(lv: Live, tid: str, pc: RTCPeerConnection, kind: str = "monitor") -> Any:
    await pc.setLocalDescription(await pc.createOffer())
    return await lv.sdk.request(
        "media.offer", {"tid": tid, "sdp": pc.localDescription.sdp, "kind": kind}
    )


async def test_offers_without_media_are_refused_and_unconnected_sessions_end(
    world: World,
) -> None:
    tid = world.device.tid
    async with live(world, connect_timeout=1.0) as lv:
        # Nothing to receive: no place is taken.
        empty = RTCPeerConnection(rtc_configuration())
        empty.createDataChannel("x")
        with pytest.raises(IVError) as refused:
            await _offer(lv, tid, empty)
        assert refused.value.code == ErrorCode.IVTermErr_msg_user_cmd_param_error
        with pytest.raises(IVError) as no_channel:
            await _offer(lv, tid, RTCPeerConnection(rtc_configuration()), kind="transmission")
        assert no_channel.value.code == ErrorCode.IVTermErr_msg_user_cmd_param_error
        assert lv.media.viewers == 0
        # Offers that never connect hold the places only until the connect timeout.
        stalled = []
        for _ in range(lv.media.max_viewers):
            pc = RTCPeerConnection(rtc_configuration())
            pc.addTransceiver("video", direction="recvonly")
            await _offer(lv, tid, pc)
            stalled.append(pc)
        with pytest.raises(IVError) as busy:
            await MonitorPlayer(tid, sdk=lv.sdk).play()
        assert busy.value.code == ErrorCode.IVTermErr_msg_calling_all_chn_busy
        async with asyncio.timeout(10):
            await asyncio.gather(*(s.closed.wait() for s in list(lv.media.sessions)))
        assert lv.media.viewers == 0
        player = MonitorPlayer(tid, sdk=lv.sdk)
        await player.play()
        await player.wait_playing()
        await player.stop()
        for pc in [empty, *stalled]:
            await pc.close()
