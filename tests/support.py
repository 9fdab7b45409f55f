"""Test support: real cloud processes, vendor keys, database snapshots, signed requests."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import select

from iotvideo.cloud.db import Database
from iotvideo.cloud.db.models import Base
from iotvideo.cloud.keys import create_key, list_keys
from iotvideo.cloud.keys import set_webhook as keys_set_webhook
from iotvideo.protocol import tc3

PG_URL = os.environ.get("IOTVIDEO_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
#: The machine's Redis, for clouds that share a bus.
REDIS_URL = "redis://127.0.0.1:6379/0"
_LISTENING = re.compile(r"iotvideo cloud listening on (https?://\S+)")


@dataclass
class CloudAddress:
    """Where a cloud listens and keeps its data."""

    data: Path
    db: str
    url: str

    @property
    def endpoint(self) -> str:
        return self.url.split("://", 1)[1]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def new_key(self) -> tuple[str, str]:
        """A new vendor with its key, written straight to the cloud's database."""
        return new_key(self.db)


@dataclass
class Cloud(CloudAddress):
    """A cloud server process started by a test."""

    proc: subprocess.Popen[str] = field(default=None)  # type: ignore[assignment]
    log: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    #: Log lines not yet looked at by :meth:`wait_for_log`, in order.
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def wait_for_log(self, pattern: str, timeout: float = 20) -> str:
        """The next log line matching ``pattern`` (waits for the cloud to write it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} in the log:\n" + "".join(self.log)) from None
            if line is None:
                raise AssertionError(f"exited before {pattern!r}:\n" + "".join(self.log))
            if re.search(pattern, line):
                return line

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signal the process and wait for it to exit; return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        status = self.proc.wait(timeout)
        if self.reader is not None:
            self.reader.join(timeout)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return status


def start_cloud(
    data: Path,
    db: str | None = None,
    *,
    port: int = 0,
    bus: str = "memory",
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Cloud:
    """Run ``iotvideo cloud`` (on a free port by default); return once it is listening."""
    db_url = db or f"sqlite+aiosqlite:///{data / 'iotvideo.db'}"
    cmd = [sys.executable, "-m", "iotvideo", "cloud", "--data", str(data), "--port", str(port)]
    cmd += [
        "--db",
        db_url,
        "--log-level",
        os.environ.get("IOTVIDEO_TEST_CLOUD_LOG", "warning"),
        "--bus",
        bus,
    ]
    # Short link timers, so that tests see reaping and sweeping within seconds.
    fast = {"IOTVIDEO_HEARTBEAT_INTERVAL": "0.5", "IOTVIDEO_VENDOR_DEVICE_WAIT": "1"}
    proc = subprocess.Popen(
        cmd,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **fast, **(env or {})},
    )
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            proc.wait()
            raise RuntimeError("the cloud did not start in time:\n" + "".join(log)) from None
        if line is None:
            proc.wait()
            reader.join()
            if proc.stderr is not None:
                proc.stderr.close()
            raise RuntimeError("the cloud exited during start:\n" + "".join(log))
        match = _LISTENING.search(line)
        if match:
            return Cloud(data, db_url, match[1], proc, log, reader, lines)


class LineWatcher:
    """Reads a process's stderr (or another of its streams) in a thread; waits for lines
    matching a pattern."""

    def __init__(self, proc: subprocess.Popen[str], stream: IO[str] | None = None) -> None:
        self.proc = proc
        self.stream = stream if stream is not None else proc.stderr
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.stream is not None
        for line in self.stream:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} in time:\n" + "".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"exited before {pattern!r}:\n" + "".join(self.lines))
            match = regex.search(line)
            if match:
                return match

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        status = self.proc.wait(30)
        self._thread.join(30)
        if self.stream is not None:
            self.stream.close()
        return status


def new_key(db_url: str) -> tuple[str, str]:
    async def go() -> tuple[str, str]:
        db = Database(db_url)
        try:
            key = await create_key(db, now=int(time.time()))
        finally:
            await db.close()
        return key.secret_id, key.secret_key

    return asyncio.run(go())


#: Tables that change by themselves (each cloud instance beats in it every few seconds).
VOLATILE = {"cloud_instances"}


def vendor_of(db_url: str, secret_id: str) -> str:
    """The vendor a key belongs to."""

    async def go() -> str:
        db = Database(db_url)
        try:
            keys = await list_keys(db)
        finally:
            await db.close()
        return next(k.vendor_id for k in keys if k.secret_id == secret_id)

    return asyncio.run(go())


def set_webhook(db_url: str, vendor_id: str, url: str) -> None:
    async def go() -> None:
        db = Database(db_url)
        try:
            await keys_set_webhook(db, vendor_id, url)
        finally:
            await db.close()

    asyncio.run(go())


def snapshot(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every iotvideo table (but the volatile ones), in a stable order."""
    return asyncio.run(asnapshot(db_url))


async def asnapshot(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """:func:`snapshot`, for async tests."""
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            out = {}
            for table in Base.metadata.sorted_tables:
                if table.name in VOLATILE:
                    continue
                rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
                out[table.name] = [tuple(r) for r in rows]
            return out
    finally:
        await db.close()


def signed_post(
    cloud: Cloud,
    key: tuple[str, str],
    action: str,
    body: bytes | dict[str, Any],
    *,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a TC3-signed request the way the official client does."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    signed = tc3.sign_request(
        key[0],
        key[1],
        action=action,
        payload=payload,
        host=cloud.endpoint,
        timestamp=int(time.time()) if timestamp is None else timestamp,
    )
    signed.update(headers or {})
    return httpx.post(cloud.url + "/", content=payload, headers=signed, timeout=30)


def error_code(response: httpx.Response) -> str | None:
    """The vendor-API error code of a response, or None on success."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()["Response"]
    assert isinstance(body["RequestId"], str) and body["RequestId"]
    error = body.get("Error")
    return None if error is None else str(error["Code"])


def run_device(cloud_url: str, certificate: str, folder: Path, *args: str) -> LineWatcher:
    """`iotvideo device run` for a device (its Certificate written under ``folder``),
    once it is online; stop it with ``.stop(signal.SIGINT)``, as Ctrl-C."""
    cert = folder / "device.cert"
    cert.write_text(certificate + "\n")
    command = [sys.executable, "-m", "iotvideo", "device", "run", "--cert", str(cert)]
    proc = subprocess.Popen(
        [*command, "--cloud", cloud_url, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    device = LineWatcher(proc)
    device.wait_for(r"device \S+ online")
    return device


def ffprobe(path: Path | str, *options: str, timeout: float = 60) -> dict[str, Any]:
    """What Debian's ffprobe says of a media file or URL: its streams and format
    (``options`` go before the input: ``-rtsp_transport tcp``, ``-count_frames``)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json",
         *options, str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    ).stdout  # fmt: skip
    return dict(json.loads(out))


@contextmanager
def loopback_ice() -> Iterator[None]:
    """ICE host candidates on loopback only, for the block: no traffic leaves the machine."""
    from iotvideo.media.webrtc import host_addresses, set_host_addresses

    previous = host_addresses()
    set_host_addresses(["127.0.0.1"])
    try:
        yield
    finally:
        set_host_addresses(previous)
