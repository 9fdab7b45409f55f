"""Run the cloud under uvicorn, with graceful shutdown on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import ssl
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from iotvideo.cloud.app import create_app
from iotvideo.cloud.db import Database
from iotvideo.cloud.link.router import LinkProtocol
from iotvideo.cloud.settings import CloudSettings

__all__ = ["WS_OPTIONS", "bind", "configure_logging", "run"]

log = logging.getLogger("iotvideo.cloud")

#: uvicorn's WebSocket options for a cloud (``run``, and the tests' in-process clouds).
WS_OPTIONS: dict[str, Any] = {
    # The link paths on our lean wire, any other WebSocket path on uvicorn's own protocol.
    "ws": LinkProtocol,
    # Link frames are small (docs/protocol.md); 1 MiB bounds what a peer can make us hold.
    "ws_max_size": 1 << 20,
    # Link frames are small JSON; zlib contexts would cost ~100 KB per connection.
    "ws_per_message_deflate": False,
    # A silent peer is pinged after 20 s and dropped 20 s later (for link connections,
    # by the presence sweep: within one more sweep interval).
    "ws_ping_interval": 20,
    "ws_ping_timeout": 20,
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, and exc
    (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, fmt: str = "text") -> None:
    """The cloud's log lines on stderr, as text or JSON (``fmt``). Replaces only the
    stream handlers a previous call added (an app SDK's handler in the same process
    stays)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.set_name("iotvideo-cloud")
    for name in ("iotvideo", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [h for h in logger.handlers if h.get_name() != "iotvideo-cloud"]
        logger.addHandler(handler)
        logger.setLevel(level.upper())
        logger.propagate = False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free port (read it from ``getsockname``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def preflight(settings: CloudSettings) -> str | None:
    """What keeps the cloud from starting, in one line (None: nothing).

    Why here and not only in the app's startup: a failure there reaches the log as a
    traceback (Starlette formats it), and a wrong data directory or database URL is a
    user's error that deserves one line. Migrating here leaves the app's own migration
    nothing to do.
    """
    tls = check_tls(settings)
    if tls is not None:
        return tls
    try:
        settings.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        _owner_only(settings.data)
    except OSError as exc:
        return f"cannot use the data directory {settings.data}: {exc.strerror}"

    async def check() -> None:
        db = Database(settings.db_url)
        try:
            await db.migrate()
        finally:
            await db.close()

    try:
        asyncio.run(check())
    except Exception as exc:  # any driver's error: its message says what is wrong
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot open the database {_redact(settings.db_url)}: {cause}"
    return None


def _owner_only(data: Path) -> None:
    """The data directory holds keys, the SQLite file, recordings and pictures: nobody
    but the cloud's user reads it. Files the cloud creates are owner-only (umask 077);
    the directory and keys left looser by an older version are tightened."""
    os.umask(0o077)
    for path in (data, data / "url.key", data / "iotvideo.db"):
        with contextlib.suppress(FileNotFoundError):
            mode = path.stat().st_mode
            wanted = 0o700 if path.is_dir() else 0o600
            if mode & 0o077:
                path.chmod(wanted)
                log.warning("%s was readable by others; now %o", path, wanted)


def _redact(url: str) -> str:
    """A database URL without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def run(settings: CloudSettings) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit status."""
    configure_logging(settings.log_level, settings.log_format)
    problem = preflight(settings)
    if problem is not None:
        log.error("%s", problem)
        return 2
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
        return 2
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.tls_cert else "http"
    url = f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    def ready() -> None:
        # Tests and scripts wait for this exact line on stderr.
        print(f"iotvideo cloud listening on {url}", file=sys.stderr, flush=True)

    app = create_app(settings, on_ready=ready)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=settings.access_log,
        # uvloop and httptools where the platform has them (iotvideo[cloud] installs both
        # where they build), asyncio and h11 elsewhere.
        loop="auto",
        http="auto",
        lifespan="on",
        timeout_graceful_shutdown=10,
        **WS_OPTIONS,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )
    server = uvicorn.Server(config)
    if settings.tls_cert is not None:
        signal.signal(signal.SIGHUP, lambda *_: _reload_tls(config, settings))
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the
    # previous handler. Make that handler end the process with status 0, not a signal death.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    with contextlib.suppress(_Stopped):
        server.run(sockets=[sock])
    if not server.started:
        return 1
    print("iotvideo cloud stopped", file=sys.stderr, flush=True)
    return 0


def check_tls(settings: CloudSettings) -> str | None:
    """What is wrong with the TLS settings, in one line (None: nothing)."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        return "give both --tls-cert and --tls-key, or neither"
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            settings.tls_cert, settings.tls_key
        )
    except (OSError, ssl.SSLError) as exc:
        return f"cannot use the TLS certificate {settings.tls_cert} and key: {exc}"
    return None


def _reload_tls(config: uvicorn.Config, settings: CloudSettings) -> None:
    """SIGHUP: load the certificate and key again (renewed by certbot, say); connections
    made from now on get the new certificate. A bad pair keeps the old one."""
    problem = check_tls(settings)
    if problem is not None or config.ssl is None:
        log.error("TLS not reloaded: %s", problem)
        return
    config.ssl.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    log.warning("TLS certificate reloaded from %s", settings.tls_cert)


class _Stopped(Exception):
    """A stop signal arrived (after uvicorn's graceful shutdown, or before it started)."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped
