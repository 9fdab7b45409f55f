"""Private PostgreSQL and Redis servers that a test starts, stops and restarts (the
machine's own ones are shared by every test and must stay up)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support import LineWatcher

__all__ = ["Postgres", "Redis", "free_port", "haproxy"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Postgres:
    """A private PostgreSQL server on a free loopback port, run as the postgres user."""

    def __init__(self, max_connections: int = 100) -> None:
        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        self.port = free_port()
        self.max_connections = max_connections
        # Not under pytest's tmp_path: its parents are root's alone, and initdb runs as
        # the postgres user.
        self.folder = Path(tempfile.mkdtemp(prefix="iotvideo-pg-"))
        shutil.chown(self.folder, "postgres")
        self.running = False
        self._as_postgres(
            self.bin / "initdb", "-D", self.folder / "data", "-A", "trust", "-U", "postgres"
        )

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: object) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, args)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
            f" -c max_connections={self.max_connections}"
        )
        self._as_postgres(
            self.bin / "pg_ctl", "-D", self.folder / "data", "-o", options,
            "-l", self.folder / "log", "-w", "start",
        )  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stop at once, as a crash would (no checkpoint; recovery at the next start)."""
        self._as_postgres(
            self.bin / "pg_ctl", "-D", self.folder / "data", "-m", "immediate", "-w", "stop"
        )
        self.running = False

    def remove(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Redis:
    """A private redis-server on a free loopback port, stopped and started by the test."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is installed on CI machines"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        # redis-server says so on stdout once it takes connections.
        self.watcher = LineWatcher(self.proc, self.proc.stdout)
        self.watcher.wait_for("Ready to accept connections", 10)

    def kill(self) -> None:
        assert self.proc is not None
        self.watcher.stop(signal.SIGKILL)  # and its stdout is closed

    def remove(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def haproxy(backends: list[str]) -> Iterator[tuple[str, LineWatcher]]:
    """HAProxy with ``deploy/haproxy.cfg`` as shipped, in front of up to three
    ``host:port`` backends; yields its URL and its log. The listening socket is made here
    and handed to HAProxy (``bind fd@N``): clients may connect at once, the kernel holds
    them until HAProxy accepts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    env = {f"IOTVIDEO_CLOUD{n + 1}": address for n, address in enumerate(backends)}
    proc = subprocess.Popen(
        ["haproxy", "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
        env={**os.environ, "IOTVIDEO_LISTEN": f"fd@{listener.fileno()}", **env},
        pass_fds=[listener.fileno()],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    watcher = LineWatcher(proc)
    try:
        yield f"http://127.0.0.1:{port}", watcher
    finally:
        watcher.stop(signal.SIGTERM)
        listener.close()
