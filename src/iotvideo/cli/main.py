"""Entry point of the ``iotvideo`` command."""

from __future__ import annotations

import typer

from iotvideo import __version__
from iotvideo.cli._common import SERVER_EXTRA, die
from iotvideo.cli.app import app_app
from iotvideo.cli.cloud import cloud_command, db_app, keys_app, vendor_app
from iotvideo.cli.device import device_app
from iotvideo.cli.gateway import gateway_app
from iotvideo.cli.media import use_ice_addresses as _media_commands  # noqa: F401 - registers app play/snapshot/record/talk
from iotvideo.cli.playback import parse_time as _playback_commands  # noqa: F401 - registers app playback/download
from iotvideo.cli.restream import restream_command
from iotvideo.cli.vas import cloud_app as _vas_commands  # noqa: F401 - registers app events/cloud
from iotvideo.cli.vendor import VendorClient as _vendor_commands  # noqa: F401 - registers vendor call/quickstart

__all__ = ["app", "main"]

app = typer.Typer(
    name="iotvideo",
    help=(
        "iotvideo: a self-hostable IoT camera video platform.\n\n"
        "Start the cloud with `iotvideo cloud --data DIR`, create a vendor API key with "
        "`iotvideo keys create --data DIR --format env`, then `iotvideo vendor quickstart "
        "--out DIR` makes a product, a camera and a user and prints the next commands. The "
        "vendor API also answers any Tencent Cloud API 3.0 iotvideo client."
    ),
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
app.command("cloud")(cloud_command)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(vendor_app, name="vendor")
app.add_typer(app_app, name="app")
app.add_typer(device_app, name="device")
app.add_typer(gateway_app, name="gateway")
app.command("restream")(restream_command)


def _version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """iotvideo command line."""


_SERVER_MODULES = ("fastapi", "sqlalchemy", "alembic", "aiosqlite", "pydantic_settings")


def main() -> None:
    """Run the command line. Commands import what they need lazily; an installation that
    lacks it gets one line saying what to install, not a traceback."""
    try:
        app()
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] in _SERVER_MODULES:
            die(SERVER_EXTRA, 2)
        if exc.name is not None and exc.name.split(".")[0] in ("asyncpg", "redis"):
            die(f"this needs {exc.name}: pip install 'iotvideo[postgres,redis]'", 2)
        raise
    except ImportError as exc:
        if type(exc).__name__ == "UnsupportedAiortcError":
            die(str(exc), 2)
        raise
