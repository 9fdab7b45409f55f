"""``iotvideo app ...``: the app SDK from the shell.

Credentials come from ``IOTVIDEO_CLOUD``, ``IOTVIDEO_ACCESS_ID`` and
``IOTVIDEO_ACCESS_TOKEN``, overridden by ``--cloud``, ``--access-id`` and
``--access-token``. Results are JSON on stdout; errors print the seed's code and name on
stderr and exit 1.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from iotvideo.cli._common import die

if TYPE_CHECKING:
    from iotvideo.app import IoTVideo

__all__ = ["app_app"]

T = TypeVar("T")

app_app = typer.Typer(
    help="Use the app SDK: read and write a device's thing model, run actions, pass data, watch.",
    no_args_is_help=True,
)
prop_app = typer.Typer(
    help="Read, write, add and delete thing-model properties.", no_args_is_help=True
)
app_app.add_typer(prop_app, name="prop")

CloudOpt = Annotated[
    str | None,
    typer.Option("--cloud", envvar="IOTVIDEO_CLOUD", help="The cloud's URL. Env: IOTVIDEO_CLOUD."),
]
AccessIdOpt = Annotated[
    str | None,
    typer.Option("--access-id", envvar="IOTVIDEO_ACCESS_ID", help="Env: IOTVIDEO_ACCESS_ID."),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--access-token", envvar="IOTVIDEO_ACCESS_TOKEN", help="Env: IOTVIDEO_ACCESS_TOKEN."
    ),
]
DeviceTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--device-token",
        help="A token granting the device (CreateBinding's AccessToken or CreateDevToken's), "
        "for devices reached without a binding.",
    ),
]
Device = Annotated[str, typer.Argument(help="The device's Tid.")]
Path = Annotated[
    str, typer.Argument(help="A thing-model path, e.g. ProWritable.nightMode ('' for all).")
]


def _run(
    cloud: str | None,
    access_id: str | None,
    token: str | None,
    device_token: str | None,
    device: str | None,
    work: Callable[[IoTVideo], Awaitable[T]],
) -> T:
    from iotvideo.app import IoTVideo
    from iotvideo.protocol.errors import IVError

    if not cloud or not access_id or not token:
        die(
            "give --cloud, --access-id and --access-token "
            "(or IOTVIDEO_CLOUD, IOTVIDEO_ACCESS_ID, IOTVIDEO_ACCESS_TOKEN).",
            2,
        )

    async def go() -> T:
        sdk = IoTVideo()
        sdk.setup(cloud)
        try:
            await sdk.register(access_id, token, timeout=15)
            if device_token and device:
                await sdk.net_config.subscribe_device(device_token, device)
            return await work(sdk)
        finally:
            await sdk.unregister()

    try:
        return asyncio.run(go())
    except IVError as exc:
        print(f"{exc.code_name} ({int(exc.code)}): {exc.message}", file=sys.stderr)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False))


@prop_app.command("get")
def prop_get(
    device: Device,
    path: Path = "",
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Print the value at PATH as JSON."""
    _print(
        _run(
            cloud,
            access_id,
            access_token,
            device_token,
            device,
            lambda s: s.message.read_property(device, path),
        )
    )


@prop_app.command("set")
def prop_set(
    device: Device,
    path: Path,
    value: Annotated[str, typer.Argument(help="JSON, e.g. '{\"setVal\": 1}' or 1 on ...setVal.")],
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Write a ProWritable (or ProUser) value; print the object after the write."""
    _print(
        _run(
            cloud,
            access_id,
            access_token,
            device_token,
            device,
            lambda s: s.message.write_property(device, path, value),
        )
    )


@prop_app.command("add")
def prop_add(
    device: Device,
    path: Annotated[str, typer.Argument(help="ProUser.<name>")],
    value: Annotated[str, typer.Argument(help="JSON value")],
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Add (or replace) a user property ProUser.<name>."""
    _print(
        _run(
            cloud,
            access_id,
            access_token,
            device_token,
            device,
            lambda s: s.message.add_property(device, path, value),
        )
    )


@prop_app.command("delete")
def prop_delete(
    device: Device,
    path: Annotated[str, typer.Argument(help="ProUser.<name>")],
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Delete a user property ProUser.<name>."""
    _run(
        cloud,
        access_id,
        access_token,
        device_token,
        device,
        lambda s: s.message.delete_property(device, path),
    )


@app_app.command("action")
def action(
    device: Device,
    path: Annotated[str, typer.Argument(help="Action.<name>")],
    value: Annotated[str, typer.Argument(help="JSON, e.g. '{\"ctlVal\": 1}'")],
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait for the device.")] = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Run an action; print the device's answer as JSON."""
    _print(
        _run(
            cloud,
            access_id,
            access_token,
            device_token,
            device,
            lambda s: s.message.take_action(device, path, value, timeout=timeout),
        )
    )


@app_app.command("send-data")
def send_data(
    device: Device,
    text: Annotated[str, typer.Argument(help="The data (UTF-8 text).")],
    reply: Annotated[
        bool, typer.Option("--reply", help="Wait for the device's answer and print it.")
    ] = False,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait for the device.")] = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Pass data to the device through the cloud (at most 30000 bytes)."""
    answer = _run(
        cloud,
        access_id,
        access_token,
        device_token,
        device,
        lambda s: s.message.send_data_to_device(
            device, text.encode(), expect_response=reply, timeout=timeout
        ),
    )
    if answer is not None:
        print(answer.decode("utf-8", "replace"))


@app_app.command("watch")
def watch(
    device: Device,
    count: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Print the device's events and property changes as JSON lines until Ctrl-C."""

    async def follow(sdk: IoTVideo) -> None:
        seen = 0
        async for message in sdk.message.messages(device):
            print(json.dumps(message.to_json(), ensure_ascii=False), flush=True)
            seen += 1
            if count is not None and seen >= count:
                return

    _run(cloud, access_id, access_token, device_token, device, follow)
