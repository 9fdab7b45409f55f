"""``iotvideo cloud``, ``iotvideo keys ...`` and ``iotvideo db ...``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from iotvideo.cli._common import (
    DataOpt,
    DbOpt,
    LogLevel,
    cloud_settings,
    die,
    require_server,
    stderr,
)

if TYPE_CHECKING:
    from iotvideo.cloud.db import Database

__all__ = ["cloud_command", "db_app", "keys_app", "vendor_app"]

T = TypeVar("T")


class KeyFormat(StrEnum):
    json = "json"
    env = "env"


keys_app = typer.Typer(
    help="Vendor API keys: create one per vendor, list them, revoke a leaked one.",
    no_args_is_help=True,
)
db_app = typer.Typer(
    help="Database schema: apply migrations, show the revision.", no_args_is_help=True
)
vendor_app = typer.Typer(
    help="The vendor API from the shell (call, publish-model, quickstart: signed with your "
    "key, against any cloud) and, on the cloud's host, the webhook for data apps send to the "
    "server and firmware files the cloud keeps.",
    no_args_is_help=True,
)


@keys_app.callback()
@db_app.callback()
def _server_group() -> None:
    """Keys and the schema live in the cloud's database: these need the server stack."""
    require_server()


def cloud_command(
    data: DataOpt = None,
    db: DbOpt = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on. Env: IOTVIDEO_HOST.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port, 0 for any free one. Env: IOTVIDEO_PORT.")
    ] = None,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level", help="How much to log. Env: IOTVIDEO_LOG_LEVEL.", show_default=False
        ),
    ] = None,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            "--log-format",
            help="text, or json: one JSON object per line (time, level, logger, message, "
            "exc) for a log collector. Env: IOTVIDEO_LOG_FORMAT.",
            show_default=False,
        ),
    ] = None,
    access_log: Annotated[
        bool | None,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every HTTP request. Env: IOTVIDEO_ACCESS_LOG.",
            show_default=False,
        ),
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option(
            help="Bus between cloud instances: memory (one process) or redis://HOST:PORT/DB. "
            "Env: IOTVIDEO_BUS."
        ),
    ] = None,
    ice_url: Annotated[
        list[str] | None,
        typer.Option(
            "--ice-url",
            help="A STUN or TURN URL handed to peers for live media, e.g. "
            "turn:turn.example:3478?transport=udp; repeat for several. "
            "Env: IOTVIDEO_ICE_URLS (a JSON list).",
            show_default=False,
        ),
    ] = None,
    turn_secret_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="A file holding the TURN servers' shared secret (coturn's "
            "static-auth-secret); peers get short-lived credentials made with it. Or set "
            "IOTVIDEO_TURN_SECRET. (Never on the command line: it would show in `ps`.)",
            show_default=False,
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="PEM certificate (chain) to serve HTTPS and wss:// with; send SIGHUP to "
            "reload it after renewal. Env: IOTVIDEO_TLS_CERT.",
            show_default=False,
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="PEM private key of --tls-cert. Env: IOTVIDEO_TLS_KEY.",
            show_default=False,
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="The cloud's URL as clients reach it, behind a reverse proxy (e.g. "
            "https://cloud.example.com): used in every URL the cloud hands out. "
            "Env: IOTVIDEO_PUBLIC_URL.",
            show_default=False,
        ),
    ] = None,
    restream_url: Annotated[
        list[str] | None,
        typer.Option(
            "--restream-url",
            metavar="URL",
            help="A restream server DescribeStream hands out URIs on: its RTSP base "
            "(rtsp://host:8554) and its HLS base (http://host:8556); repeat for a pool. "
            "Env: IOTVIDEO_RESTREAM_URLS (a JSON list).",
            show_default=False,
        ),
    ] = None,
    stream_key_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="A file holding the Ed25519 private key (base64 of its 32 bytes) that signs "
            "DescribeStream URIs, for several instances (default: one kept in the data "
            "directory). Or set IOTVIDEO_STREAM_KEY.",
            show_default=False,
        ),
    ] = None,
    url_secret_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="A file holding the key of signed playback URLs, for several instances "
            "(default: one kept in the data directory). Or set IOTVIDEO_URL_SECRET.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the cloud server (vendor API, health at /healthz) until Ctrl-C or SIGTERM.

    The schema is migrated at start. Prints 'iotvideo cloud listening on URL' on stderr
    once it accepts requests.
    """
    settings = cloud_settings(
        data=data,
        db=db,
        host=host,
        port=port,
        log_level=log_level,
        log_format=log_format,
        access_log=access_log,
        bus=bus,
        ice_urls=ice_url or None,
        turn_secret=_secret_file(turn_secret_file, "--turn-secret-file"),
        url_secret=_secret_file(url_secret_file, "--url-secret-file"),
        restream_urls=restream_url or None,
        stream_key=_secret_file(stream_key_file, "--stream-key-file"),
        tls_cert=tls_cert,
        tls_key=tls_key,
        public_url=public_url,
    )
    if settings.public_url and not settings.public_url.startswith(("http://", "https://")):
        die("--public-url must be an http:// or https:// URL", 2)
    turn = [u for u in settings.ice_urls if u.startswith(("turn:", "turns:"))]
    if turn and not settings.turn_secret:
        die(
            "TURN URLs need a shared secret: --turn-secret-file FILE or IOTVIDEO_TURN_SECRET "
            "(peers need credentials).",
            2,
        )
    bad = [
        u for u in settings.restream_urls if not u.startswith(("rtsp://", "http://", "https://"))
    ]
    if bad:
        die(f"--restream-url takes rtsp://, http:// or https:// URLs, not {bad[0]!r}", 2)
    if settings.stream_key:
        from iotvideo.cloud.streams import stream_key

        try:
            stream_key(settings.data, settings.stream_key)
        except ValueError as exc:
            die(str(exc), 2)
    from iotvideo.cloud.server import run

    raise typer.Exit(run(settings))


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def _secret_file(path: Path | None, flag: str) -> str | None:
    """A secret read from a file given on the command line (the secret itself never is)."""
    if path is None:
        return None
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        die(f"{flag}: cannot read {path}: {exc}", 2)
    if not secret:
        die(f"{flag}: {path} is empty", 2)
    return secret


def _with_db(data: object, db: object, work: Callable[[Database], Awaitable[T]]) -> T:
    settings = cloud_settings(data=data, db=db)
    from iotvideo.cloud.db import Database
    from iotvideo.cloud.keys import UnknownKeyError

    async def go() -> T:
        settings.data.mkdir(parents=True, exist_ok=True)
        database = Database(settings.db_url)
        try:
            await database.migrate()
            return await work(database)
        finally:
            await database.close()

    try:
        return asyncio.run(go())
    except UnknownKeyError as exc:
        die(str(exc.args[0]))
    except OSError as exc:
        die(f"cannot open the database: {exc}")


@keys_app.command("create")
def keys_create(
    data: DataOpt = None,
    db: DbOpt = None,
    vendor: Annotated[
        str | None,
        typer.Option(
            help="Add the key to this existing vendor (key rotation) instead of a new one."
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="A name for a new vendor.")] = "",
    output: Annotated[
        KeyFormat,
        typer.Option(
            "--format",
            help='json: {"SecretId": ..., "SecretKey": ...}; env: IOTVIDEO_SECRET_ID=... '
            "and IOTVIDEO_SECRET_KEY=... lines, for `set -a; . FILE; set +a`.",
        ),
    ] = KeyFormat.json,
) -> None:
    """Create a vendor with an API key (or a new key for --vendor).

    Prints the key on stdout, as one JSON object or as env lines (--format env). The
    SecretKey is shown only this once: keep the output somewhere only you can read.
    `iotvideo vendor quickstart` and `iotvideo vendor call` use it next.
    """
    from iotvideo.cloud.keys import create_key

    now = int(time.time())
    key = _with_db(data, db, lambda d: create_key(d, now=now, vendor_id=vendor, name=name))
    if output is KeyFormat.env:
        print(f"IOTVIDEO_SECRET_ID={key.secret_id}\nIOTVIDEO_SECRET_KEY={key.secret_key}")
    else:
        print(json.dumps({"SecretId": key.secret_id, "SecretKey": key.secret_key}))
    stderr.print(f"key {key.secret_id} created for vendor {key.vendor_id}", highlight=False)


@keys_app.command("list")
def keys_list(
    data: DataOpt = None,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List API keys (never their secrets), active and revoked."""
    from iotvideo.cloud.keys import list_keys

    rows = _with_db(data, db, list_keys)
    if as_json:
        for k in rows:
            print(
                json.dumps(
                    {
                        "SecretId": k.secret_id,
                        "VendorId": k.vendor_id,
                        "VendorName": k.vendor_name,
                        "CreatedAt": k.created_at,
                        "RevokedAt": k.revoked_at,
                    }
                )
            )
        return

    table = Table("SecretId", "Vendor", "Name", "Created (UTC)", "Status")
    for k in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(k.created_at))
        table.add_row(
            k.secret_id, k.vendor_id, k.vendor_name, created, "active" if k.active else "revoked"
        )
    # Ids are typed into other commands: never cut to the terminal's width (a narrow
    # terminal wraps the lines instead).
    console = Console()
    wide = console.options.update_width(10_000)
    console.width = max(console.width, Measurement.get(console, wide, table).maximum)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    secret_id: Annotated[str, typer.Argument(help="The SecretId to revoke.")],
    data: DataOpt = None,
    db: DbOpt = None,
) -> None:
    """Revoke a key at once: requests signed with it get AuthFailure.SecretIdNotFound."""
    from iotvideo.cloud.keys import revoke_key

    now = int(time.time())
    info = _with_db(data, db, lambda d: revoke_key(d, secret_id, now=now))
    stderr.print(f"key {info.secret_id} of vendor {info.vendor_id} is revoked", highlight=False)


@db_app.command("upgrade")
def db_upgrade(data: DataOpt = None, db: DbOpt = None) -> None:
    """Apply all migrations (the cloud also does this when it starts)."""
    revision = _with_db(data, db, lambda d: d.revision())
    stderr.print(f"database at revision {revision}", highlight=False)


@db_app.command("current")
def db_current(data: DataOpt = None, db: DbOpt = None) -> None:
    """Print the schema revision of the database."""
    revision = _with_db(data, db, lambda d: d.revision())
    print(revision)


def _check_url(url: str) -> None:
    """A vendor's endpoint: http(s), or empty to remove it."""
    if url and not url.startswith(("http://", "https://")):
        die("the URL must be http:// or https://", 2)


@vendor_app.command("webhook")
def vendor_webhook(
    vendor: Annotated[str, typer.Argument(help="The vendor id (see `iotvideo keys list`).")],
    url: Annotated[str, typer.Argument(help="http(s) URL; an empty string removes it.")],
    data: DataOpt = None,
    db: DbOpt = None,
) -> None:
    """Set where apps' send-data-to-server messages are POSTed (JSON, see docs/protocol.md)."""
    require_server()
    from iotvideo.cloud.keys import set_webhook

    _check_url(url)
    _with_db(data, db, lambda d: set_webhook(d, vendor, url))
    stderr.print(
        f"vendor {vendor}: webhook {'set to ' + url if url else 'removed'}", highlight=False
    )


@vendor_app.command("events")
def vendor_events(
    vendor: Annotated[str, typer.Argument(help="The vendor id (see `iotvideo keys list`).")],
    url: Annotated[str, typer.Argument(help="http(s) URL; an empty string stops them.")],
    data: DataOpt = None,
    db: DbOpt = None,
) -> None:
    """Set where notifications about the vendor's devices are POSTed: online/offline,
    events (with picture URLs), firmware results, net-config results. Signed the Standard
    Webhooks way and retried for a day; prints the signing secret (whsec_...) to check
    them with (the send-data webhook is signed with it too)."""
    require_server()
    from iotvideo.cloud.keys import set_events_url

    _check_url(url)
    secret = _with_db(data, db, lambda d: set_events_url(d, vendor, url))
    print(json.dumps({"vendor": vendor, "events_url": url, "secret": secret}))


@vendor_app.command("firmware")
def vendor_firmware(
    file: Annotated[Path, typer.Argument(help="The firmware file.", exists=True, dir_okay=False)],
    base_url: Annotated[
        str, typer.Option(help="The cloud's URL as devices reach it, e.g. http://cloud:8080.")
    ],
    data: DataOpt = None,
) -> None:
    """Keep a firmware file in the cloud (its data directory) and print the
    UploadOtaVersion fields for it: {"VersionUrl", "FileSize", "Md5"}."""
    settings = cloud_settings(data=data)
    from iotvideo.cloud.firmware import store_firmware

    if not base_url.startswith(("http://", "https://")):
        die("--base-url must be an http:// or https:// URL", 2)
    name, size, md5 = store_firmware(settings.data, file)
    print(
        json.dumps(
            {"VersionUrl": f"{base_url.rstrip('/')}/firmware/{name}", "FileSize": size, "Md5": md5}
        )
    )
