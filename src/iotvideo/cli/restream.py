"""``iotvideo restream``: every camera an app user may watch, as RTSP, HLS and snapshot
URLs for the tools people already run (docs/restream.md)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from iotvideo.cli._common import LogLevel, LogLevelOpt, die, setup_logging
from iotvideo.cli.app import AccessIdOpt, CloudOpt, TokenOpt
from iotvideo.cli.media import IceAddressOpt, use_ice_addresses

__all__ = ["restream_command"]


def restream_command(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="A restream.toml (docs/restream.md): users, cameras, their tokens, ports. "
            "Flags override it.",
            show_default=False,
        ),
    ] = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to serve on (default 0.0.0.0).")
    ] = None,
    rtsp_port: Annotated[
        int | None, typer.Option("--rtsp-port", help="RTSP port (default 8554; 0: any).")
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option("--http-port", help="HLS, snapshot and /metrics port (default 8556)."),
    ] = None,
    rtsp_user: Annotated[
        str | None,
        typer.Option(
            "--rtsp-user",
            help="The user clients sign in as (RTSP digest, HTTP basic); its password from "
            "--rtsp-password-stdin or IOTVIDEO_RESTREAM_PASSWORD.",
        ),
    ] = None,
    rtsp_password_stdin: Annotated[
        bool,
        typer.Option("--rtsp-password-stdin", help="Read the password from standard input."),
    ] = False,
    device: Annotated[
        list[str] | None,
        typer.Option("--device", help="Serve only this device (repeat; default: all)."),
    ] = None,
    idle: Annotated[
        float | None,
        typer.Option("--idle", help="Seconds a camera is kept after its last client (10)."),
    ] = None,
    ice_address: IceAddressOpt = None,
    log_level: LogLevelOpt = LogLevel.info,
) -> None:
    """Serve cameras to other tools: `rtsp://HOST:8554/TID[/SOURCE]`,
    `http://HOST:8556/TID/index.m3u8` (HLS), `.../snapshot.jpg`, and `/metrics`.

    Each camera is pulled from its device once, on its first client, and left after the
    idle time. Clients sign in with --rtsp-user and its password, or with a camera's
    token (`?token=`, from the config file). The URIs the vendor API's DescribeStream
    hands out (`?ticket=`) are served too; without --access-id, only those.
    """
    from iotvideo.app import IoTVideo
    from iotvideo.app.restream import Restream
    from iotvideo.app.restream.config import RestreamConfig, RestreamConfigError, load_config
    from iotvideo.app.restream.rtsp import RtspUnavailable
    from iotvideo.protocol.errors import IVError

    setup_logging(log_level)
    use_ice_addresses(ice_address)
    try:
        settings = load_config(config) if config is not None else RestreamConfig()
    except RestreamConfigError as exc:
        die(str(exc), 2)
    cloud = cloud or settings.cloud
    access_id = access_id or settings.access_id
    access_token = access_token or settings.access_token
    if not cloud:
        die("give --cloud (or IOTVIDEO_CLOUD, or the config file's cloud key).", 2)
    if bool(access_id) != bool(access_token):
        die(
            "give both --access-id and --access-token (IOTVIDEO_ACCESS_ID, "
            "IOTVIDEO_ACCESS_TOKEN), or neither to serve DescribeStream URIs only.",
            2,
        )
    options = settings.options
    options.cloud = cloud
    options.host = host or options.host
    options.rtsp_port = options.rtsp_port if rtsp_port is None else rtsp_port
    options.http_port = options.http_port if http_port is None else http_port
    options.idle = options.idle if idle is None else idle
    if device:
        options.devices = list(device)
    if rtsp_user:
        password = (
            sys.stdin.readline().rstrip("\r\n")
            if rtsp_password_stdin
            else os.environ.get("IOTVIDEO_RESTREAM_PASSWORD", "")
        )
        if not password:
            die(
                "--rtsp-user needs a password: --rtsp-password-stdin or IOTVIDEO_RESTREAM_PASSWORD",
                2,
            )
        options.users[rtsp_user] = password
    if access_id and not options.users and not options.tokens:
        die(
            "restream serves nothing without credentials: give --rtsp-user (and its "
            "password), or [users] / camera tokens in the config file.",
            2,
        )

    async def serve() -> None:
        sdk = None
        if access_id and access_token:
            sdk = IoTVideo()
            sdk.setup(cloud)
            await sdk.register(access_id, access_token, timeout=15, fail_fast=True)
        restream = Restream(sdk, options)
        try:
            await restream.start()
            rtsp = restream.rtsp.port if restream.rtsp is not None else options.rtsp_port
            shown = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host  # noqa: S104
            devices = restream.devices() if sdk is not None else []
            tickets = "yes" if restream.ticket_key is not None else "no (no key from the cloud)"
            print(f"serving {len(devices)} device(s); DescribeStream URIs: {tickets}; "
                  "Ctrl-C to stop", flush=True)  # fmt: skip
            web = f"http://{shown}:{restream.http_port}"
            for tid in devices:
                print(f"  rtsp://{shown}:{rtsp}/{tid}   {web}/{tid}/index.m3u8   "
                      f"{web}/{tid}/snapshot.jpg", flush=True)  # fmt: skip
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await restream.stop()
            if sdk is not None:
                await sdk.unregister()

    try:
        asyncio.run(serve())
    except IVError as exc:
        die(f"{exc.code_name} ({int(exc.code)}): {exc.message}", 1)
    except RtspUnavailable as exc:
        die(str(exc), 1)
    except OSError as exc:
        die(f"cannot serve: {exc}", 1)
