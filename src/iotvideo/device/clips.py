"""Event cloud storage: which recorded segments go to the cloud (sans-IO, thread-safe).

Under an event plan (the seed's ``curOrderPkgType`` 2) only the video around events is
kept: a clip runs from :data:`PRE_ROLL_MS` before an event's start to
:data:`POST_ROLL_MS` after its end, lasts at least :data:`MIN_CLIP_MS` and at most
:data:`MAX_CLIP_MS`, and clips that overlap are one (a segment overlapping any clip is
uploaded once). An event whose end is not known yet (still going on) keeps its clip open
until it is, or for the longest clip.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["MAX_CLIP_MS", "MIN_CLIP_MS", "POST_ROLL_MS", "PRE_ROLL_MS", "EventClips"]

PRE_ROLL_MS = 5_000
POST_ROLL_MS = 5_000
MIN_CLIP_MS = 3_000
MAX_CLIP_MS = 3_600_000


@dataclass(frozen=True)
class _Clip:
    start_ms: int
    end_ms: int


class EventClips:
    """The clips of one channel's events, by event id."""

    def __init__(self) -> None:
        self._clips: dict[str, _Clip] = {}
        self._lock = threading.Lock()

    def event(self, event_id: str, start_ms: int, end_ms: int | None) -> None:
        """An event from ``start_ms`` to ``end_ms`` (None: still going on); the same id
        again moves its clip's end."""
        begin = start_ms - PRE_ROLL_MS
        finish = start_ms + MAX_CLIP_MS if end_ms is None else end_ms + POST_ROLL_MS
        finish = min(max(finish, begin + MIN_CLIP_MS), begin + MAX_CLIP_MS)
        with self._lock:
            known = self._clips.get(event_id)
            if known is not None:
                begin = min(begin, known.start_ms)
                if end_ms is None:
                    finish = max(finish, known.end_ms)
            self._clips[event_id] = _Clip(begin, finish)

    def wanted(self, start_ms: int, end_ms: int) -> bool:
        """Whether a segment from ``start_ms`` to ``end_ms`` belongs to a clip."""
        with self._lock:
            return any(c.start_ms < end_ms and start_ms < c.end_ms for c in self._clips.values())

    def forget_before(self, t_ms: int) -> None:
        """Drop the clips that ended before ``t_ms`` (their segments are out)."""
        with self._lock:
            self._clips = {k: c for k, c in self._clips.items() if c.end_ms >= t_ms}
