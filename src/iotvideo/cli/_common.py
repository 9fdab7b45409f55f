"""Helpers shared by the command groups: settings from flags, errors that say what to do."""

from __future__ import annotations

import ipaddress
import logging
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from iotvideo.cloud.settings import CloudSettings

__all__ = [
    "SERVER_EXTRA",
    "DataOpt",
    "DbOpt",
    "LogLevel",
    "LogLevelOpt",
    "cloud_settings",
    "die",
    "ip_addresses",
    "require_server",
    "setup_logging",
    "stderr",
]

#: What the server commands need beyond the base distribution.
SERVER_EXTRA = (
    "this command runs the cloud server, which the base distribution leaves out: "
    "pip install 'iotvideo[cloud]' (add ,postgres and ,redis for several instances)"
)

stderr = Console(stderr=True, soft_wrap=True)  # messages are not cut at 80 columns

DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Data directory (SQLite file, blobs). Env: IOTVIDEO_DATA.",
        show_default=False,
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (default: SQLite in the data directory). Env: IOTVIDEO_DB.",
        show_default=False,
    ),
]


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


LogLevelOpt = Annotated[LogLevel, typer.Option("--log-level", help="How much to log on stderr.")]


def setup_logging(level: LogLevel) -> None:
    """Log lines with a time on stderr, from ``level`` up."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def ip_addresses(values: list[str] | None) -> list[str] | None:
    """Option callback: IP addresses, each value possibly comma-separated."""
    if not values:
        return values
    addresses = [a.strip() for v in values for a in v.split(",") if a.strip()]
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise typer.BadParameter(f"{address!r} is not an IP address") from None
    return addresses


def die(message: str, code: int = 1) -> NoReturn:
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def require_server() -> None:
    """End the command with what to install when the server stack is not installed."""
    try:
        import aiosqlite  # noqa: F401
        import alembic  # noqa: F401
        import fastapi  # noqa: F401
        import pydantic_settings  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError:
        die(SERVER_EXTRA, 2)


def cloud_settings(**flags: Any) -> CloudSettings:
    """Settings from IOTVIDEO_* env vars, overridden by the flags that were given."""
    require_server()
    from pydantic import ValidationError

    from iotvideo.cloud.settings import CloudSettings

    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return CloudSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        if any(e["loc"] == ("data",) and e["type"] == "missing" for e in exc.errors()):
            die("no data directory: pass --data DIR or set IOTVIDEO_DATA.", 2)
        die(f"invalid settings: {problems}", 2)
