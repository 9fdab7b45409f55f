"""The device's queue of events not yet acknowledged by the cloud.

Events are sent at least once: each gets an id of its own when it is raised, stays queued
until the cloud acknowledges it, and is sent again after a reconnect (the cloud drops a
second copy by its id). With a folder the queue is a file, so it survives a restart of the
device; it is bounded, and an event pushed out by a full queue is counted and logged,
never lost silently.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EventQueue", "QueuedEvent"]

log = logging.getLogger("iotvideo.device")


@dataclass(frozen=True)
class QueuedEvent:
    id: str
    name: str
    value: Any
    t: int


class EventQueue:
    """Oldest first; ``folder`` (optional) keeps it across restarts in ``events.jsonl``."""

    def __init__(self, folder: Path | None = None, *, limit: int = 1000) -> None:
        self.limit = limit
        #: Events dropped because the queue was full (oldest first), since start.
        self.lost = 0
        self._file = folder / "events.jsonl" if folder is not None else None
        self._events: deque[QueuedEvent] = deque()
        if self._file is not None:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            self._events.extend(self._load(self._file))

    def __len__(self) -> int:
        return len(self._events)

    def add(self, name: str, value: Any, t: int) -> QueuedEvent:
        event = QueuedEvent(secrets.token_hex(8), name, value, t)
        self._events.append(event)
        while len(self._events) > self.limit:
            dropped = self._events.popleft()
            self.lost += 1
            log.warning(
                "event queue full (%d): dropped event %s (%s) raised at %d; %d lost so far",
                self.limit, dropped.name, dropped.id, dropped.t, self.lost,
            )  # fmt: skip
        self._save()
        return event

    def oldest(self) -> QueuedEvent | None:
        return self._events[0] if self._events else None

    def done(self, event: QueuedEvent) -> None:
        """The cloud acknowledged ``event``: forget it."""
        if self._events and self._events[0] == event:
            self._events.popleft()
        else:
            self._events = deque(e for e in self._events if e.id != event.id)
        self._save()

    def _save(self) -> None:
        if self._file is None:
            return
        tmp = self._file.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for e in self._events:
                f.write(json.dumps({"id": e.id, "name": e.name, "value": e.value, "t": e.t}))
                f.write("\n")
        os.replace(tmp, self._file)

    @staticmethod
    def _load(path: Path) -> list[QueuedEvent]:
        events: list[QueuedEvent] = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return events
        for line in lines:
            try:
                raw = json.loads(line)
                events.append(
                    QueuedEvent(str(raw["id"]), str(raw["name"]), raw["value"], int(raw["t"]))
                )
            except (ValueError, KeyError, TypeError):
                log.warning("skipping an unreadable line of %s", path)
        return events
