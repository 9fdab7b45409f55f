"""The test pattern through a real H.264 encoder and decoder: its stamps read back."""

from __future__ import annotations

import av
import numpy as np
import pytest

from iotvideo.media.h264 import CLOCK_RATE, H264Encoder, is_idr
from iotvideo.media.testsrc import Stamp, TestPattern, read_stamp


def _decode(packets: list[av.Packet]) -> list[np.ndarray]:
    decoder = av.CodecContext.create("h264", "r")
    frames = []
    for packet in packets:
        frames += [f.to_ndarray(format="rgb24") for f in decoder.decode(packet)]
    frames += [f.to_ndarray(format="rgb24") for f in decoder.decode(None)]
    return frames


@pytest.mark.parametrize(("width", "height"), [(320, 180), (640, 360), (1280, 720)])
def test_stamps_survive_encoding(width: int, height: int) -> None:
    pattern, encoder = TestPattern(width, height), H264Encoder(width, height, fps=15)
    start = 1_795_500_000_000
    packets = []
    for n in range(20):
        stamp = Stamp(start + n * 66, n)
        packets += encoder.encode(pattern.frame(stamp), n * CLOCK_RATE // 15)
    packets += encoder.close()
    frames = _decode(packets)
    assert len(frames) == 20
    assert all(f.shape == (height, width, 3) for f in frames)
    assert [read_stamp(f) for f in frames] == [Stamp(start + n * 66, n) for n in range(20)]


def test_forced_keyframes_and_headers() -> None:
    pattern, encoder = TestPattern(320, 180), H264Encoder(320, 180, fps=15, gop=10)
    keyframes = []
    for n in range(12):
        if n == 7:
            encoder.force_keyframe()
        for packet in encoder.encode(pattern.frame(Stamp(n, n)), n * 6000):
            keyframes.append(packet.is_keyframe)
            data = bytes(packet)
            assert data.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")), "Annex-B"
            assert is_idr(data) == packet.is_keyframe
            if packet.is_keyframe:
                assert b"\x00\x00\x01\x67" in data or b"\x00\x00\x00\x01\x67" in data, "SPS"
    assert keyframes == [n in (0, 7) for n in range(12)]


def test_other_pictures_have_no_stamp() -> None:
    assert read_stamp(np.full((180, 320, 3), 128, dtype=np.uint8)) is None
    noise = np.random.default_rng(1).integers(0, 256, (180, 320, 3), dtype=np.uint8)
    assert read_stamp(noise) is None
    with pytest.raises(ValueError, match="even sides"):
        TestPattern(321, 180)
