"""H.264 encoding for sources the device encodes itself (``testsrc:``, V4L2 raw frames).

One encoder per source, never per viewer (the fan-out hands the same packets to every
viewer). Output is Annex-B with a 90 kHz clock, as RTP/WebRTC and MPEG-TS want it; SPS and
PPS are repeated before every keyframe so any viewer can start at any keyframe.
``force_keyframe()`` makes the next frame an IDR (a new viewer, or a receiver's PLI).

Encoding is CPU work: call :meth:`H264Encoder.encode` off the event loop.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType

__all__ = [
    "CLOCK_RATE",
    "H264Decoder",
    "H264Encoder",
    "is_idr",
    "nal_types",
    "parameter_sets",
    "recording_time",
    "with_parameter_sets",
    "with_recording_time",
]

#: The RTP clock of video.
CLOCK_RATE = 90_000


class H264Encoder:
    """libx264 tuned for live video: no B-frames, no lookahead, a keyframe every ``gop`` s."""

    def __init__(
        self,
        width: int,
        height: int,
        *,
        fps: float = 15.0,
        bitrate: int = 600_000,
        gop: float = 2.0,
        preset: str = "ultrafast",
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.time_base = Fraction(1, CLOCK_RATE)
        codec.framerate = Fraction(fps).limit_denominator(1001)
        codec.bit_rate = bitrate
        codec.gop_size = max(1, round(fps * gop))
        codec.options = {
            "preset": preset,
            "tune": "zerolatency",
            "x264-params": "repeat-headers=1:annexb=1:scenecut=0",
        }
        self._codec = codec
        self._force = False

    def force_keyframe(self) -> None:
        """Make the next encoded frame an IDR."""
        self._force = True

    def encode(self, image: np.ndarray, pts: int) -> list[av.Packet[Any]]:
        """Encode one RGB24 picture taken at ``pts`` (90 kHz); the packets it produced."""
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, Fraction(1, CLOCK_RATE)
        # Frames may arrive flagged as I-frames (e.g. from lavfi); only ask when we mean it.
        frame.pict_type = PictureType.I if self._force else PictureType.NONE
        self._force = False
        return list(self._codec.encode(frame))

    def close(self) -> list[av.Packet[Any]]:
        """Flush: the packets still inside the encoder."""
        return list(self._codec.encode(None))


class H264Decoder:
    """FFmpeg's H.264 decoder: Annex-B access units in, frames out. Blocking: call it off
    the event loop."""

    def __init__(self) -> None:
        self._codec: Any = av.CodecContext.create("h264", "r")

    def decode(self, data: bytes, pts: int) -> list[av.VideoFrame]:
        """The frames this access unit completes; raises av.FFmpegError on broken data."""
        if not data:  # an empty packet would flush (end) the decoder
            return []
        packet = av.Packet(data)
        packet.pts = pts
        return list(self._codec.decode(packet))

    def flush(self) -> list[av.VideoFrame]:
        """The frames the decoder still holds (it ends)."""
        return list(self._codec.decode(None))


def is_idr(data: bytes) -> bool:
    """Does this Annex-B access unit hold an IDR slice (NAL type 5)?"""
    i = 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0 or i + 3 >= len(data):
            return False
        if data[i + 3] & 0x1F == 5:
            return True
        i += 3


def nal_types(data: bytes) -> list[int]:
    """The NAL unit types in an Annex-B access unit, in order."""
    return [data[header] & 0x1F for _, header in _starts(data)]


def with_parameter_sets(data: bytes, parameter_sets: bytes) -> bytes:
    """A keyframe that carries SPS and PPS (some cameras send them only out of band, in
    the SDP or the container header): prepend them when it has none."""
    if not parameter_sets or 7 in nal_types(data):
        return data
    return parameter_sets + data


def parameter_sets(data: bytes) -> bytes:
    """The SPS and PPS NAL units of an Annex-B access unit (with start codes), or b""."""
    out = []
    starts = _starts(data)
    for n, (_, header) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(data)
        if data[header] & 0x1F in (7, 8):
            out.append(b"\x00\x00\x00\x01" + data[header:end].rstrip(b"\x00"))
    return b"".join(out)


def _starts(data: bytes) -> list[tuple[int, int]]:
    """(start code position, NAL header position) of each NAL unit."""
    found = []
    i = 0
    while (i := data.find(b"\x00\x00\x01", i)) >= 0 and i + 3 < len(data):
        start = i - 1 if i > 0 and data[i - 1] == 0 else i
        found.append((start, i + 3))
        i += 3
    return found


#: The UUID of our SEI message (user data unregistered, payload type 5) that carries a
#: played-back frame's recording time: decoders skip it, players read it.
TIME_SEI_UUID = bytes.fromhex("8b2a4f0e6d1c4e7a9f35a7c0e1d2b3c4")


def _escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes (00 00 0x -> 00 00 03 0x for x <= 3)."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _unescape(ebsp: bytes) -> bytes:
    return ebsp.replace(b"\x00\x00\x03", b"\x00\x00")


def with_recording_time(data: bytes, time_ms: int) -> bytes:
    """The access unit with an SEI NAL unit saying it was recorded at ``time_ms`` (UNIX
    ms), placed before its first slice. Why in the bitstream: the time travels with the
    frame through RTP and every player's decoder, whatever reaches the app first."""
    payload = TIME_SEI_UUID + int(time_ms).to_bytes(8, "big")
    sei = b"\x00\x00\x00\x01\x06" + _escape(bytes([5, len(payload)]) + payload + b"\x80")
    for position, header in _starts(data):
        if data[header] & 0x1F in (1, 5):
            return data[:position] + sei + data[position:]
    return data + sei


def recording_time(data: bytes) -> int | None:
    """The recording time (UNIX ms) an access unit carries (:func:`with_recording_time`),
    or None."""
    starts = _starts(data)
    for n, (_, header) in enumerate(starts):
        kind = data[header] & 0x1F
        if kind in (1, 5):
            return None
        if kind != 6:
            continue
        end = starts[n + 1][0] if n + 1 < len(starts) else len(data)
        body = _unescape(data[header + 1 : end])
        if len(body) >= 26 and body[0] == 5 and body[2:18] == TIME_SEI_UUID:
            return int.from_bytes(body[18:26], "big")
    return None
