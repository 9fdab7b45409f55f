"""The WebRTC adaptations: two peers connect over loopback alone, with no STUN server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection

from iotvideo.media.webrtc import (
    UDP_BUFFER,
    host_addresses,
    is_mdns_candidate,
    parse_candidate,
    remote_sdp,
    resolves_mdns,
    rtc_configuration,
    set_host_addresses,
)
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


OFFER_WITH_MDNS = "\r\n".join(
    [
        "v=0",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:0",
        "a=candidate:1 1 udp 2113937151 9e4192c9-e8f5-4776-92e9-d1fdd9aca579.local 52687 typ host",
        "a=candidate:2 1 udp 2113937151 127.0.0.1 52688 typ host",
        "a=end-of-candidates",
        "",
    ]
)


def test_mdns_candidates_are_resolved_only_off_loopback() -> None:
    """A device whose ICE is held to loopback never asks the LAN for a browser's mDNS name
    (the query would leave the machine): the name is dropped, the peer's checks make the
    pair; on a LAN the name stays for aioice to resolve."""
    before = host_addresses()
    try:
        set_host_addresses(["127.0.0.1"])
        assert not resolves_mdns()
        kept = remote_sdp(OFFER_WITH_MDNS)
        assert ".local" not in kept and "127.0.0.1 52688" in kept and kept.endswith("\r\n")
        trickled = parse_candidate(
            "candidate:1 1 udp 2113937151 AB-cd.local 52687 typ host", "0", None
        )
        assert is_mdns_candidate(trickled) and not is_mdns_candidate(None)
        set_host_addresses(["127.0.0.1", "198.51.100.2"])
        assert resolves_mdns() and remote_sdp(OFFER_WITH_MDNS) == OFFER_WITH_MDNS
        set_host_addresses(None)
        assert resolves_mdns()
    finally:
        set_host_addresses(before)


async def test_ice_sockets_get_a_receive_buffer_above_the_sctp_window(loopback: None) -> None:
    """A data channel may have 1 MiB in flight: with aioice's 256 KiB socket buffer a
    download outran the receiving loop, the kernel dropped datagrams and SCTP halved its
    rate (downloads from 10 to 33 MB/s between runs)."""
    peer = RTCPeerConnection(rtc_configuration())
    try:
        peer.createDataChannel("file")
        await peer.setLocalDescription(await peer.createOffer())
        assert peer.sctp is not None
        connection = peer.sctp.transport.transport._connection
        sockets = [p.transport.get_extra_info("socket") for p in connection._protocols]
        assert sockets
        cap = int(await asyncio.to_thread(Path("/proc/sys/net/core/rmem_max").read_text))
        wanted = min(UDP_BUFFER, cap)
        for sock in sockets:  # Linux reports twice what was set (its bookkeeping)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= wanted
        assert wanted > 1 << 20  # above the SCTP receive window on this machine
    finally:
        await peer.close()
