"""A thread that runs jobs in order, for the blocking PyAV work of one stream (decoding,
encoding, muxing), so the event loop never waits on it; and the end of the asyncio tasks
that feed such work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["SerialWorker", "cancel_and_wait"]


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended (their cancellation is expected)."""
    ending = list(tasks)
    for task in ending:
        task.cancel()
    for task in ending:
        with contextlib.suppress(asyncio.CancelledError):
            await task


log = logging.getLogger("iotvideo.media")


class SerialWorker:
    """Runs ``submit``-ted calls one after another on its own thread.

    The queue is bounded: when the thread falls behind, :meth:`submit` refuses the job
    (returns False) so the caller can skip, e.g. to the next keyframe.
    """

    def __init__(self, name: str, *, maxsize: int = 240) -> None:
        self.name = name
        self._jobs: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue(
            maxsize
        )
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        if self._closed:
            return False
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        try:
            self._jobs.put_nowait((fn, args))
        except queue.Full:
            return False
        return True

    def close(self, *, wait: bool = False) -> None:
        """Stop after the jobs already queued; with ``wait``, until they are done."""
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            return
        try:
            self._jobs.put_nowait(None)
        except queue.Full:  # drop the backlog: the stream is over
            while not self._jobs.empty():
                self._jobs.get_nowait()
            self._jobs.put_nowait(None)
        if wait and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def close_after(self, fn: Callable[[], Any]) -> None:
        """Close, and run ``fn`` after every job already queued (none is dropped, however
        full the queue). Blocks until ``fn`` is queued: call it off the event loop."""
        self._closed = True
        if self._thread is None:  # nothing was ever queued
            fn()
            return
        self._jobs.put((fn, ()))
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args = job
            try:
                fn(*args)
            except Exception:
                log.exception("%s: job failed", self.name)
