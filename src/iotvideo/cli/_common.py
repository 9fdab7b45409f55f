"""Helpers shared by the command groups: settings from flags, errors that say what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from iotvideo.cloud.settings import CloudSettings

__all__ = ["DataOpt", "DbOpt", "cloud_settings", "die", "stderr"]

stderr = Console(stderr=True)

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


def die(message: str, code: int = 1) -> NoReturn:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def cloud_settings(**flags: Any) -> CloudSettings:
    """Settings from IOTVIDEO_* env vars, overridden by the flags that were given."""
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
