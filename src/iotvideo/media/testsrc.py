"""The ``testsrc:`` picture: a moving pattern with a burned-in clock and frame counter.

Every frame carries its capture time (Unix milliseconds) and its number twice: as a strip
of black and white blocks along the top that survives H.264 compression
(:func:`read_stamp` reads it back from a decoded frame, for tests and glass-to-glass
latency), and as digits a person can read.

Sans-IO apart from the clock the caller passes in: frames are numpy arrays (RGB24).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["STAMP_BITS", "Stamp", "TestPattern", "read_stamp"]

#: Bits in the strip: 44 for the time in ms (good until the year 2527), 20 for the frame
#: number (wraps at about 1M), then a parity bit of the two.
TIME_BITS, COUNT_BITS = 44, 20
STAMP_BITS = TIME_BITS + COUNT_BITS + 1

# A 3x5 font for the digits, ':' and '.', one string of 15 pixels each (row by row).
_FONT = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001001001",
    "8": "111101111101111",
    "9": "111101111001111",
    ":": "000010000010000",
    ".": "000000000000010",
    " ": "000000000000000",
    "#": "101111101111101",
}


@dataclass(frozen=True)
class Stamp:
    """What a frame says about itself."""

    time_ms: int
    count: int


def _bits(stamp: Stamp) -> list[int]:
    value = ((stamp.time_ms % (1 << TIME_BITS)) << COUNT_BITS) | (stamp.count % (1 << COUNT_BITS))
    bits = [(value >> (TIME_BITS + COUNT_BITS - 1 - i)) & 1 for i in range(TIME_BITS + COUNT_BITS)]
    return [*bits, sum(bits) & 1]


def _block(width: int) -> int:
    """Block size of the strip: as wide as the frame allows, at least 4 px."""
    return max(4, width // STAMP_BITS)


class TestPattern:
    """Frames of a given size: a scrolling colour gradient, a moving bar, the stamp."""

    __test__ = False  # not a pytest class

    def __init__(self, width: int = 640, height: int = 360) -> None:
        if width < 4 * STAMP_BITS or height < 64 or width % 2 or height % 2:
            raise ValueError(f"a test pattern is at least {4 * STAMP_BITS}x64, with even sides")
        self.width, self.height = width, height
        y, x = np.mgrid[0:height, 0:width]
        self._x, self._y = x.astype(np.int32), y.astype(np.int32)

    def frame(self, stamp: Stamp) -> np.ndarray:
        """The picture for ``stamp`` (H x W x 3, uint8)."""
        w, h, n = self.width, self.height, stamp.count
        image = np.empty((h, w, 3), dtype=np.uint8)
        image[..., 0] = ((self._x + 2 * n) * 255 // w) % 256
        image[..., 1] = ((self._y + n) * 255 // h) % 256
        image[..., 2] = 128
        bar = (n * 4) % w
        image[:, bar : bar + 8] = 255
        block = _block(w)
        for i, bit in enumerate(_bits(stamp)):
            image[0:block, i * block : (i + 1) * block] = 255 if bit else 0
        self._text(image, _clock_text(stamp), top=block + 6)
        return image

    def _text(self, image: np.ndarray, text: str, *, top: int) -> None:
        scale = max(2, self.height // 90)
        left = 6
        for char in text:
            glyph = np.array([int(c) for c in _FONT.get(char, _FONT["#"])], dtype=bool)
            glyph = glyph.reshape(5, 3).repeat(scale, 0).repeat(scale, 1)
            gh, gw = glyph.shape
            if left + gw > self.width or top + gh > self.height:
                return
            region = image[top : top + gh, left : left + gw]
            region[glyph] = 255
            region[~glyph] = 0
            left += gw + scale


def _clock_text(stamp: Stamp) -> str:
    seconds, ms = divmod(stamp.time_ms, 1000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours % 24:02d}:{minute:02d}:{sec:02d}.{ms:03d} #{stamp.count}"


def read_stamp(image: np.ndarray) -> Stamp | None:
    """Read the strip of a decoded test-pattern frame (RGB or gray); None if it is not one.

    Each block is sampled in its middle, so scaling by the codec's rounding or mild
    compression noise does not matter.
    """
    gray = image if image.ndim == 2 else image[..., :3].mean(axis=2)
    block = _block(gray.shape[1])
    if gray.shape[0] < block or gray.shape[1] < block * STAMP_BITS:
        return None
    middle = block // 2
    levels = [
        float(gray[middle - 1 : middle + 2, i * block + middle - 1 : i * block + middle + 2].mean())
        for i in range(STAMP_BITS)
    ]
    bits = [1 if v >= 128 else 0 for v in levels]
    if any(40 < v < 215 for v in levels) or sum(bits[:-1]) & 1 != bits[-1]:
        return None
    value = 0
    for bit in bits[:-1]:
        value = (value << 1) | bit
    return Stamp(value >> COUNT_BITS, value & ((1 << COUNT_BITS) - 1))
