"""A traced device's run log: its own log lines, uploaded to the cloud while the vendor
traces it (CreateTraceIds), read back with the vendor API's DescribeRunLog.

The cloud says whether the device is traced in the login reply (``trace``) and with a
``trace`` push when that changes. While traced, :class:`RunLog` collects

- the records of the ``iotvideo`` loggers that concern this device (those naming its
  Tid, or carrying ``extra={"tid": ...}``), at the level ``ProWritable._logLevel`` sets;
- the lines the firmware writes itself with :meth:`RunLog.write`;

and sends them every ``interval`` seconds with the link's ``log.upload`` request. Lines
are kept (at most ``max_lines``, the oldest dropped first) while the link is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from iotvideo.protocol.errors import IVError

if TYPE_CHECKING:
    from iotvideo.device.client import DeviceClient

__all__ = ["MAX_UPLOAD", "RunLog"]

#: The most characters one upload carries (the cloud's limit).
MAX_UPLOAD = 16 * 1024

log = logging.getLogger("iotvideo.device")


class RunLog(logging.Handler):
    """Collects and uploads a device's log lines while the cloud traces it."""

    def __init__(
        self, device: DeviceClient, *, interval: float = 2.0, max_lines: int = 2000
    ) -> None:
        super().__init__(logging.DEBUG)
        self.device = device
        self.interval = interval
        self.lines: deque[str] = deque(maxlen=max_lines)
        self._task: asyncio.Task[None] | None = None
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    @property
    def active(self) -> bool:
        """Whether the cloud traces the device (lines are collected and uploaded)."""
        return self._task is not None

    def set_active(self, on: bool) -> None:
        if on and self._task is None:
            logging.getLogger("iotvideo").addHandler(self)
            self._task = asyncio.get_running_loop().create_task(self._upload_loop())
        elif not on and self._task is not None:
            logging.getLogger("iotvideo").removeHandler(self)
            self._task.cancel()
            self._task = None
            self.lines.clear()

    async def close_async(self) -> None:
        """Stop collecting (the device stops)."""
        task = self._task
        self.set_active(False)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def write(self, line: str) -> None:
        """Add a line of the firmware's own to the run log (kept only while traced)."""
        if self.active:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self.lines.append(f"{stamp} {line.rstrip()}")

    def emit(self, record: logging.LogRecord) -> None:
        tid = self.device.tid
        if getattr(record, "tid", None) != tid and tid not in record.getMessage():
            return  # another device's, in a process running several (a gateway)
        try:
            self.lines.append(self.format(record))
        except Exception:  # a logging handler never raises
            self.handleError(record)

    async def flush_now(self) -> None:
        """Upload what is collected (raises the link's error; the lines are kept)."""
        while self.lines:
            batch: list[str] = []
            size = 0
            while self.lines and size + len(self.lines[0]) + 1 <= MAX_UPLOAD:
                line = self.lines.popleft()
                batch.append(line)
                size += len(line) + 1
            if not batch:  # one line longer than an upload: cut it
                batch = [self.lines.popleft()[: MAX_UPLOAD - 1]]
            try:
                await self.device.link.request("log.upload", {"text": "\n".join(batch) + "\n"})
            except IVError:
                self.lines.extendleft(reversed(batch))
                raise

    async def _upload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.lines or not self.device.link.online:
                continue
            try:
                await self.flush_now()
            except IVError as exc:
                # Not logged at INFO: the line would name the device and join the log.
                log.debug("run log upload failed, kept for the next: %s", exc)
