"""Cloud storage on the wire, sans IO: signed device uploads, signed URLs, recorded
ranges, HLS playlists.

- A device signs an HTTP request with its identity key: headers ``X-IV-Tid``,
  ``X-IV-Time`` (UNIX seconds) and ``X-IV-Signature``, an Ed25519 signature of
  :func:`upload_message` (purpose ``iotvideo-upload-v1``, so that no login signature,
  whatever nonce a server asked it to sign, passes as an upload's).
- Playlist and segment URLs carry ``exp`` (UNIX seconds) and ``sig``, an HMAC-SHA256 of
  the path and ``exp`` with the cloud's URL secret: anyone holding the URL may fetch it
  until it expires, nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from iotvideo.protocol.link import Purpose, signed_message

__all__ = [
    "Range",
    "Segment",
    "build_m3u8",
    "matches_type_masks",
    "merge_ranges",
    "sign_path",
    "upload_message",
    "upload_subject",
    "verify_path",
]

#: Two recordings closer than this (ms) are one range; further apart, a gap.
GAP_MS = 500


def upload_subject(method: str, path_and_query: str, body: bytes) -> str:
    """What a device's signature of an HTTP request covers: method, target, body hash."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()} {path_and_query} {digest}"


def upload_message(tid: str, method: str, path_and_query: str, body: bytes, when: int) -> bytes:
    """The message a device signs for an HTTP upload (purpose ``iotvideo-upload-v1``)."""
    return signed_message(Purpose.UPLOAD, tid, upload_subject(method, path_and_query, body), when)


def sign_path(secret: bytes, path: str, expires: int) -> str:
    return hmac.new(secret, f"{path}?exp={expires}".encode(), hashlib.sha256).hexdigest()


def verify_path(secret: bytes, path: str, expires: int, signature: str, now: int) -> bool:
    if expires < now:
        return False
    return hmac.compare_digest(sign_path(secret, path, expires), signature)


class Segment(NamedTuple):
    """A recorded piece: its times (UNIX ms) and where a player fetches it. (A tuple:
    a day's playlist makes 8640 of them per request.)"""

    start_ms: int
    end_ms: int
    uri: str


@dataclass(frozen=True)
class Range:
    start_ms: int
    end_ms: int


def merge_ranges(pieces: Iterable[tuple[int, int]], gap_ms: int = GAP_MS) -> list[Range]:
    """Time-ordered (start, end) pieces as the continuous ranges they make."""
    ranges: list[Range] = []
    for start, end in sorted(pieces):
        if ranges and start - ranges[-1].end_ms <= gap_ms:
            last = ranges[-1]
            ranges[-1] = Range(last.start_ms, max(last.end_ms, end))
        else:
            ranges.append(Range(start, end))
    return ranges


def build_m3u8(
    segments: Sequence[tuple[int, int, str]], *, complete: bool, gap_ms: int = GAP_MS
) -> str:
    """An HLS media playlist of ``segments`` (time-ordered), with a discontinuity at
    every gap; ``complete`` ends it (EXT-X-ENDLIST), else players ask again."""
    longest = max((end - start for start, end, _ in segments), default=1000)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(longest / 1000))}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD" if complete else "#EXT-X-PLAYLIST-TYPE:EVENT",
    ]
    previous_end: int | None = None
    append = lines.append
    for start, end, uri in segments:
        if previous_end is not None and start - previous_end > gap_ms:
            append("#EXT-X-DISCONTINUITY")
        append(f"#EXTINF:{(end - start) / 1000:.3f},\n{uri}")
        previous_end = end
    if complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def matches_type_masks(alarm_type: int, masks: Sequence[int]) -> bool:
    """The seed's typeMask rule: within one mask any bit (OR); across masks every mask
    (AND). ``[3]``: bit0 or bit1; ``[1, 2]``: bit0 and bit1. No masks: everything."""
    return all(alarm_type & mask for mask in masks)
