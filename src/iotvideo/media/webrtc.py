"""Every adaptation of aiortc and aioice the project makes, in one place, each with why.

Import WebRTC things from here, not from aiortc directly, so the adaptations are in force:

- host candidates chosen by us, loopback included (:func:`set_host_addresses`);
- no default public STUN server (:func:`rtc_configuration`);
- encoded-frame pass-through on the sending side (:class:`PacketTrack`), with the
  receiver's keyframe requests (PLI/FIR) reaching the source (``keyframe_wanted``);
- the encoded frames on the receiving side, before any decoding (:func:`tap_receiver`);
- video frames leave the jitter buffer when their last packet arrives, not a frame later;
- ICE's UDP sockets receive into :data:`UDP_BUFFER` bytes of kernel buffer.
"""

from __future__ import annotations

import ipaddress
import queue
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import aioice.ice
import aioice.turn
import av
from aioice.candidate import Candidate
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcicetransport import candidate_from_aioice
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

__all__ = [
    "EncodedSink",
    "MediaStreamError",
    "PacketTrack",
    "RTCIceServer",
    "RTCPeerConnection",
    "RTCSessionDescription",
    "answer_with",
    "codecs_of",
    "host_addresses",
    "ice_servers",
    "is_mdns_candidate",
    "make_packet",
    "parse_candidate",
    "remote_sdp",
    "resolves_mdns",
    "rtc_configuration",
    "set_host_addresses",
    "tap_receiver",
]

#: The aiortc releases these adaptations were written for and tested with (pyproject.toml
#: pins the same range).
SUPPORTED_AIORTC = ">=1.16,<1.17"


class UnsupportedAiortcError(ImportError):
    """The installed aiortc or aioice lacks an internal that an adaptation here replaces."""


def _assigned_in_init(cls: type, name: str) -> bool:
    # Instance attributes exist only on objects that need a live transport to build;
    # the names their __init__ assigns are in its code object.
    code = getattr(vars(cls).get("__init__"), "__code__", None)
    return code is not None and name in code.co_names


def check_internals() -> None:
    """Raise :class:`UnsupportedAiortcError` naming every aiortc/aioice internal that the
    adaptations below need and the installed versions lack.

    Why: each adaptation replaces a private function or attribute. A release that renames
    one would otherwise break at the first play (or silently lose the adaptation), far
    from its cause; this check runs at import and says what to install.
    """
    wanted = {
        "aioice.ice.get_host_addresses": hasattr(aioice.ice, "get_host_addresses"),
        "aioice.turn.UDP_SOCKET_BUFFER_SIZE": hasattr(aioice.turn, "UDP_SOCKET_BUFFER_SIZE"),
        "RTCRtpSender._send_keyframe": hasattr(RTCRtpSender, "_send_keyframe"),
        "JitterBuffer._remove_frame": hasattr(JitterBuffer, "_remove_frame"),
        "JitterBuffer.remove": hasattr(JitterBuffer, "remove"),
        "JitterBuffer.capacity": hasattr(JitterBuffer, "capacity"),
        "RTCRtpReceiver.__decoder_queue": _assigned_in_init(
            RTCRtpReceiver, "_RTCRtpReceiver__decoder_queue"
        ),
        "RTCRtpReceiver.__decoder_error": _assigned_in_init(
            RTCRtpReceiver, "_RTCRtpReceiver__decoder_error"
        ),
        "RTCRtpTransceiver._codecs": _assigned_in_init(RTCRtpTransceiver, "_codecs"),
    }
    for name in ("_is_video", "_origin", "_packets"):
        wanted[f"JitterBuffer.{name}"] = _assigned_in_init(JitterBuffer, name)
    missing = [name for name, present in wanted.items() if not present]
    if missing:
        import aiortc

        raise UnsupportedAiortcError(
            f"iotvideo needs aiortc {SUPPORTED_AIORTC}; the installed aiortc "
            f"{getattr(aiortc, '__version__', '?')} lacks {', '.join(missing)}. "
            f"Install a supported one: pip install 'aiortc{SUPPORTED_AIORTC}'"
        )


check_internals()

_original_get_host_addresses = aioice.ice.get_host_addresses
_host_addresses: list[str] | None = None


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    # Why: aioice never offers 127.0.0.1 as a host candidate, so two peers whose only
    # common network is loopback (tests, a device and an app on one box) cannot connect;
    # and a deployment may want ICE on chosen interfaces only. When addresses are set,
    # they are the host candidates; otherwise aioice's own choice stands.
    if _host_addresses is None:
        return _original_get_host_addresses(use_ipv4, use_ipv6)
    return [a for a in _host_addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


aioice.ice.get_host_addresses = _get_host_addresses

#: Kernel receive buffer of each ICE UDP socket (host and TURN), in bytes; the kernel caps
#: it at net.core.rmem_max.
#: Why: aioice asks for 256 KiB; an SCTP data channel may have 1 MiB in flight (aiortc's
#: receive window), so a download, or a keyframe for several viewers, outruns one event-loop
#: turn, the kernel drops the rest (UDP RcvbufErrors) and SCTP halves its rate: downloads
#: ran from 10 to 33 MB/s between runs (benchmarks/playback.py).
UDP_BUFFER = 1 << 21
aioice.turn.UDP_SOCKET_BUFFER_SIZE = UDP_BUFFER


def set_host_addresses(addresses: Sequence[str] | None) -> None:
    """Offer exactly these host candidates (e.g. ``["127.0.0.1"]``); None: all interfaces
    but loopback, aioice's default."""
    global _host_addresses
    _host_addresses = list(addresses) if addresses is not None else None


def host_addresses() -> list[str] | None:
    """The host candidates in force (None: aioice's default)."""
    return None if _host_addresses is None else list(_host_addresses)


def resolves_mdns() -> bool:
    """Whether remote ``.local`` candidates are resolved (multicast DNS on the LAN): not
    when ICE is held to loopback (a LAN name is unreachable from there, and the query
    would go out on the LAN)."""
    if _host_addresses is None:
        return True
    return any(not ipaddress.ip_address(a).is_loopback for a in _host_addresses)


def is_mdns_candidate(candidate: RTCIceCandidate | None) -> bool:
    return candidate is not None and candidate.ip.lower().rstrip(".").endswith(".local")


def remote_sdp(sdp: str) -> str:
    """A peer's description as this agent should take it: its mDNS candidates dropped when
    they are not resolved here (:func:`resolves_mdns`); the peer's connectivity checks
    still reach us and make the pair."""
    if resolves_mdns():
        return sdp
    lines = sdp.split("\r\n") if "\r\n" in sdp else sdp.split("\n")
    sep = "\r\n" if "\r\n" in sdp else "\n"
    kept = [
        line
        for line in lines
        if not (
            line.startswith("a=candidate:")
            and len(line.split()) > 4
            and line.split()[4].lower().rstrip(".").endswith(".local")
        )
    ]
    return sep.join(kept)


def rtc_configuration(
    ice_servers: Sequence[RTCIceServer] = (), *, relay_only: bool = False
) -> RTCConfiguration:
    """An explicit ICE server list. Why: with no configuration aiortc adds a public STUN
    server, which a self-hosted platform (and its tests) must never contact; the cloud
    hands out its own STUN/TURN servers and credentials. ``relay_only``: use TURN relay
    candidates only (networks where peers cannot reach each other, and its test)."""
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=list(ice_servers), iceTransportPolicy=policy)


def answer_with(transceiver: Any, mime: str) -> bool:
    """Make an answering transceiver use exactly ``mime`` (e.g. ``audio/PCMU``); False if
    the offer did not include it.

    Why: a pass-through source sends what it has, so the answer must name that codec and
    no other. aiortc settles an answerer's codecs inside ``setRemoteDescription`` (which
    also creates the transceiver), so ``setCodecPreferences`` comes too late; we narrow the
    negotiated list it keeps (the first entry is what the sender uses).
    """
    chosen = [c for c in transceiver._codecs if c.mimeType.lower() == mime.lower()]
    if not chosen:
        return False
    keep = {c.payloadType for c in chosen}
    # Keep the retransmission (rtx) entries that belong to the chosen codecs.
    rtx = [
        c
        for c in transceiver._codecs
        if c.mimeType.lower().endswith("/rtx") and int(c.parameters.get("apt", -1)) in keep
    ]
    transceiver._codecs = chosen + rtx
    return True


def codecs_of(kind: str, mime: str) -> list[Any]:
    """aiortc's capabilities for one codec (for ``setCodecPreferences``)."""
    return [
        c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() == mime.lower()
    ]


def parse_candidate(line: str, mid: str | None, index: int | None) -> RTCIceCandidate | None:
    """A trickled ICE candidate as a browser sends it (``candidate:...``, as in
    ``RTCIceCandidate.candidate`` or an SDP fragment's ``a=candidate:`` line) for the media
    section ``mid`` (or the m-line ``index``); None for ``""``, the end of candidates.
    Raise ValueError when it cannot be read. Host names ending in ``.local`` are kept:
    aioice resolves them with mDNS (browsers hide their addresses behind them)."""
    text = line.strip().removeprefix("a=").removeprefix("candidate:")
    if not text:
        return None
    if mid is None and index is None:
        raise ValueError("a candidate needs its media section (mid or index)")
    parsed = Candidate.from_sdp(text)  # ValueError for what it cannot read
    if parsed.component not in (1, 2) or parsed.type not in ("host", "srflx", "prflx", "relay"):
        raise ValueError("not an ICE candidate this agent can use")
    candidate = candidate_from_aioice(parsed)
    candidate.sdpMid, candidate.sdpMLineIndex = mid, index
    return candidate


def ice_servers(servers: Sequence[dict[str, Any]]) -> list[RTCIceServer]:
    """The cloud's ``ice_servers`` list (``urls``, ``username``, ``credential``) for aiortc."""
    return [
        RTCIceServer(
            urls=list(s["urls"]) if isinstance(s["urls"], list) else [str(s["urls"])],
            username=s.get("username"),
            credential=s.get("credential"),
        )
        for s in servers
    ]


# Sending encoded frames


class PacketTrack(MediaStreamTrack):
    """A track whose frames are already encoded: ``recv()`` returns :class:`av.Packet`.

    Why: aiortc encodes every sender's track on its own, once per peer; a camera serving
    several viewers (or passing its hardware's H.264 through) must encode once, or not at
    all. aiortc packetizes an ``av.Packet`` without encoding (``Encoder.pack``), so a track
    of packets is the pass-through. ``next_packet`` gives the next packet, or None at
    the end; ``on_keyframe_wanted`` is called when the receiver asks for a keyframe.
    """

    def __init__(
        self,
        kind: str,
        next_packet: Callable[[], Any],
        *,
        on_keyframe_wanted: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self._next = next_packet
        self.on_keyframe_wanted = on_keyframe_wanted

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._next()
        if packet is None:
            self.stop()
            raise MediaStreamError
        assert isinstance(packet, av.Packet)
        return packet

    def keyframe_wanted(self) -> None:
        if self.on_keyframe_wanted is not None:
            self.on_keyframe_wanted()


def make_packet(data: bytes, pts: int, time_base: Fraction) -> av.Packet[Any]:
    """An ``av.Packet`` for :class:`PacketTrack` (the time base is the codec's clock)."""
    packet = av.Packet(data)
    packet.pts = pts
    packet.time_base = time_base
    return packet


_original_send_keyframe = RTCRtpSender._send_keyframe


def _send_keyframe(self: RTCRtpSender) -> None:
    # Why: on a PLI or FIR aiortc only flags its own encoder ("force the next frame to be
    # a keyframe"), which a pass-through track never uses, so a receiver that lost a
    # keyframe would wait for the next regular one (seconds). Tell the track instead; our
    # source forces an IDR, or the viewer restarts from the cached GOP.
    _original_send_keyframe(self)
    track = self.track
    if isinstance(track, PacketTrack):
        track.keyframe_wanted()


RTCRtpSender._send_keyframe = _send_keyframe  # type: ignore[method-assign]


# Receiving encoded frames

_original_remove_frame = JitterBuffer._remove_frame


def _remove_frame(self: JitterBuffer, sequence_number: int) -> JitterFrame | None:
    # Why: aiortc's jitter buffer knows a video frame is complete only when the first
    # packet of the next frame arrives, which delays every picture by one frame interval
    # (67 ms at 15 fps). The sender marks the last packet of each frame (the RTP marker
    # bit, RFC 6184), so a contiguous run of packets ending with the marker is a whole
    # frame: hand it on at once. Frames without a marker still complete the old way.
    frame = _original_remove_frame(self, sequence_number)
    if frame is not None or not self._is_video or self._origin is None:
        return frame
    packets: list[Any] = []
    for count in range(self.capacity):
        packet = self._packets[(self._origin + count) % self.capacity]
        if packet is None or (packets and packet.timestamp != packets[0].timestamp):
            return None
        packets.append(packet)
        if packet.marker:
            self.remove(count + 1)
            return JitterFrame(b"".join(p._data for p in packets), packets[0].timestamp)
    return None


JitterBuffer._remove_frame = _remove_frame  # type: ignore[method-assign]

#: ``sink(mime_type, data, timestamp)``: one depacketized frame (an H.264 access unit in
#: Annex-B, an Opus or G.711 frame) and its RTP timestamp, rebased to start at 0.
EncodedSink = Callable[[str, bytes, int], None]


class _TapQueue(queue.Queue[Any]):
    """Stands in for the receiver's decoder queue: frames go to the sink, not the decoder."""

    def __init__(self, sink: EncodedSink) -> None:
        super().__init__()
        self.sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # the receiver stops: let its (idle) decoder thread end
            super().put(None)
            return
        codec, encoded = item
        self.sink(codec.mimeType, bytes(encoded.data), int(encoded.timestamp))


def tap_receiver(receiver: RTCRtpReceiver, sink: EncodedSink) -> Callable[[], None]:
    """Hand ``receiver``'s depacketized frames to ``sink`` (on the event loop) instead of
    aiortc's decoder; call before the connection starts. Returns ``decode_failed()``:
    call it when your decoder could not decode a frame, and the sender is asked for a
    keyframe (PLI).

    Why: aiortc has no API for a receiver's encoded frames; it decodes them itself on a
    thread and hands out only decoded frames. Recording without re-encoding, and the
    player's own (replaceable) decoders, need the frames as they arrived. The decoder
    queue is the one place both travel through, so we replace it.
    """
    receiver._RTCRtpReceiver__decoder_queue = _TapQueue(sink)  # type: ignore[attr-defined]
    error = receiver._RTCRtpReceiver__decoder_error  # type: ignore[attr-defined]
    return error.set  # type: ignore[no-any-return]
