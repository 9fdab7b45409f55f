"""The WebRTC adaptations: two peers connect over loopback alone, with no STUN server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiortc import RTCPeerConnection

from iotvideo.media.webrtc import rtc_configuration
from tests.support import loopback_ice


@pytest.fixture
def loopback() -> Iterator[None]:
    with loopback_ice():
        yield


async def test_peers_connect_over_loopback(loopback: None) -> None:
    offerer = RTCPeerConnection(rtc_configuration())
    answerer = RTCPeerConnection(rtc_configuration())
    try:
        channel = offerer.createDataChannel("custom")
        opened = asyncio.Event()
        channel.on("open", opened.set)
        received: asyncio.Queue[str | bytes] = asyncio.Queue()

        @answerer.on("datachannel")
        def on_channel(remote: object) -> None:
            remote.on("message", received.put_nowait)  # type: ignore[attr-defined]

        await offerer.setLocalDescription(await offerer.createOffer())
        offer = offerer.localDescription
        candidates = [line for line in offer.sdp.splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(" 127.0.0.1 " in line for line in candidates), candidates
        await answerer.setRemoteDescription(offer)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)
        async with asyncio.timeout(10):
            await opened.wait()
            channel.send(b"hello camera")
            assert await received.get() == b"hello camera"
    finally:
        await offerer.close()
        await answerer.close()


def test_no_default_stun_server() -> None:
    assert rtc_configuration().iceServers == []
