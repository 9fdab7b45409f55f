"""``iotvideo gateway``: your cameras and NVRs as devices of the platform."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Annotated

import typer

from iotvideo.cli._common import LogLevel, LogLevelOpt, die, setup_logging, stderr
from iotvideo.cli.media import IceAddressOpt, use_ice_addresses

__all__ = ["gateway_app"]

gateway_app = typer.Typer(
    help="Run your RTSP cameras and NVRs as devices, from one config file (docs/gateway.md).",
    invoke_without_command=True,
)

ConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config",
        metavar="FILE",
        help="The gateway's TOML file: the cloud, then each device with its channels.",
    ),
]


@gateway_app.callback()
def gateway(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="Run the devices of this TOML file until Ctrl-C (SIGHUP reads it again).",
        ),
    ] = None,
    ice_address: IceAddressOpt = None,
    log_level: LogLevelOpt = LogLevel.info,
) -> None:
    """Run every camera and NVR of a config file as a device, in one process.

    Each channel is pulled from its camera, served live to apps and the console,
    recorded onto its card and (with a plan) to the cloud, and watched for motion: events
    with a picture go to the app and the cloud. A camera that does not answer is tried
    again with backoff and reported offline in its thing model; the others run on. A bad
    entry in the file is one line naming it, and the rest runs. SIGHUP reads the file
    again: devices and channels added, removed or changed start or stop.

    `iotvideo gateway check --config FILE` checks a file and probes each camera first.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        stderr.print(ctx.get_help())
        raise typer.Exit(2)
    from iotvideo.device.gateway.config import ConfigError
    from iotvideo.device.gateway.runner import Gateway

    setup_logging(log_level)
    use_ice_addresses(ice_address)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        runner = Gateway(config)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, runner.reload_soon)
        await runner.run(stop)

    try:
        asyncio.run(go())
    except ConfigError as exc:
        die(str(exc), 2)


@gateway_app.command("check")
def check(config: ConfigOpt, log_level: LogLevelOpt = LogLevel.warning) -> None:
    """Check a config file and probe each channel's camera: one line per channel with
    its codec, size and frame rate, or why it cannot be used. Exits 1 if anything is
    wrong."""
    from iotvideo.device.gateway.check import check_config
    from iotvideo.device.gateway.config import ConfigError

    setup_logging(log_level)
    try:
        _, ok = check_config(config, on_line=lambda line: print(line, flush=True))
    except ConfigError as exc:
        die(str(exc), 2)
    raise typer.Exit(0 if ok else 1)


@gateway_app.command("model")
def model(
    channels: Annotated[
        int, typer.Option(min=1, max=64, help="Channels of the product's devices (an NVR's).")
    ] = 1,
) -> None:
    """Print the thing model of gateway devices (publish it with `iotvideo vendor
    publish-model PRODUCT_ID --gateway-channels N`)."""
    from iotvideo.device.gateway.model import gateway_model

    print(json.dumps(gateway_model(channels), indent=2))
