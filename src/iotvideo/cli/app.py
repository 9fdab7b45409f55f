"""``iotvideo app ...``: the app SDK from the shell.

Credentials come from ``IOTVIDEO_CLOUD``, ``IOTVIDEO_ACCESS_ID`` and
``IOTVIDEO_ACCESS_TOKEN``, overridden by ``--cloud``, ``--access-id`` and
``--access-token``. Results are JSON on stdout; errors print the SDK error code and name on
stderr and exit 1.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path as Path_
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from iotvideo.cli._common import die, ip_addresses

if TYPE_CHECKING:
    from iotvideo.app import IoTVideo

__all__ = ["app_app"]

T = TypeVar("T")

app_app = typer.Typer(
    help="Use the app SDK: read and write a device's thing model, run actions, pass data, "
    "watch, provision devices, play, snapshot, record and talk, check firmware, browse "
    "events and cloud recordings.",
    no_args_is_help=True,
)
prop_app = typer.Typer(
    help="Read, write, add and delete thing-model properties.", no_args_is_help=True
)
app_app.add_typer(prop_app, name="prop")
netconfig_app = typer.Typer(
    help="Provision devices: bind tokens and QR codes.", no_args_is_help=True
)
app_app.add_typer(netconfig_app, name="netconfig")
lan_app = typer.Typer(
    help="Find devices on the LAN and send them Wi-Fi settings.", no_args_is_help=True
)
app_app.add_typer(lan_app, name="lan")

CloudOpt = Annotated[
    str | None,
    typer.Option(
        "--cloud",
        envvar="IOTVIDEO_CLOUD",
        metavar="URL",
        help="The cloud's URL, e.g. http://127.0.0.1:8080.",
        show_default=False,
    ),
]
AccessIdOpt = Annotated[
    str | None,
    typer.Option(
        "--access-id",
        envvar="IOTVIDEO_ACCESS_ID",
        metavar="ID",
        help="The end user's AccessId (CreateAppUsr; iotvideo vendor quickstart writes it "
        "to app.env).",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--access-token",
        envvar="IOTVIDEO_ACCESS_TOKEN",
        metavar="TOKEN",
        help="The user's AccessToken (CreateUsrToken). Prefer the environment variable: "
        "the command line shows in the process list.",
        show_default=False,
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
Device = Annotated[str, typer.Argument(metavar="TID", help="The device's Tid.")]
InterfaceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--interface",
        metavar="ADDRESS",
        callback=ip_addresses,
        help="IP address of a network interface to search on (default: all).",
    ),
]
Path = Annotated[
    str,
    typer.Argument(
        metavar="[PATH]",
        help="A thing-model path, e.g. ProWritable.nightMode or ProReadonly (default: all).",
        show_default=False,
    ),
]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="IOTVIDEO_WIFI_PASSWORD",
        help="The Wi-Fi password. The environment variable or --password-stdin keep it out "
        "of the process list and the shell history.",
        show_default=False,
    ),
]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the Wi-Fi password from the first line of standard input."
    ),
]


def _password(password: str | None, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return password or ""


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
            await sdk.register(access_id, token, timeout=15, fail_fast=True)
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
    path: Annotated[str, typer.Argument(metavar="PATH", help="ProUser.NAME")],
    value: Annotated[str, typer.Argument(help="JSON value")],
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Add (or replace) a user property ProUser.NAME."""
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
    path: Annotated[str, typer.Argument(metavar="PATH", help="ProUser.NAME")],
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Delete a user property ProUser.NAME."""
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
    path: Annotated[str, typer.Argument(metavar="PATH", help="Action.NAME, e.g. Action.cameraOn")],
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


@app_app.command("firmware")
def firmware(
    device: Device,
    current_version: Annotated[
        str | None,
        typer.Option(help="Ask for this version (default: the one the device reported)."),
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="Release notes in: en, zh or tc (default: the vendor's).")
    ] = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Print the firmware the device may upgrade to: {"downUrl", "version", "upgDescs"},
    or {} when it is up to date."""

    async def ask(sdk: IoTVideo) -> None:
        _print(await sdk.device_mgr.query_new_version(device, current_version, language))

    _run(cloud, access_id, access_token, device_token, device, ask)


@netconfig_app.command("token")
def netconfig_token(
    wait: Annotated[
        float | None,
        typer.Option(
            help="Then wait this many seconds for a device to log in with it and print the result."
        ),
    ] = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
) -> None:
    """Print a new bind token (10 minutes, single use); with --wait, also the net-config result."""

    async def get(sdk: IoTVideo) -> None:
        from iotvideo.protocol.errors import IVError

        result = sdk.net_config.next_net_cfg_result()
        token = await sdk.net_config.get_bind_token()
        print(token, flush=True)
        if wait is not None:
            try:
                async with asyncio.timeout(wait):
                    _print({"device_id": await result, "code": 0})
            except TimeoutError:
                die(f"no device logged in with the token within {wait:g} s; is it online?", 1)
            except IVError as exc:
                _print({"code": int(exc.code), "msg": exc.message})
                raise typer.Exit(1) from None

    _run(cloud, access_id, access_token, None, None, get)


@netconfig_app.command("qr")
def netconfig_qr(
    ssid: Annotated[str, typer.Option(help="The Wi-Fi network the camera should join.")],
    out: Annotated[Path_, typer.Option(metavar="FILE", help="Where to write the PNG.")],
    password: PasswordOpt = None,
    password_stdin: PasswordStdinOpt = False,
    token: Annotated[str | None, typer.Option(help="A bind token (default: a new one).")] = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
) -> None:
    """Write the QR code to show the camera; print {"token", "payload"}."""
    secret = _password(password, password_stdin)

    async def make(sdk: IoTVideo) -> None:
        bind_token = token or await sdk.net_config.get_bind_token()
        code = sdk.net_config.qrcode.create(ssid, secret, bind_token)
        code.save(out)
        _print({"token": bind_token, "payload": code.payload, "png": str(out)})

    _run(cloud, access_id, access_token, None, None, make)


@lan_app.command("list")
def lan_list(
    timeout: Annotated[float, typer.Option(help="Seconds to listen for announcements.")] = 2.0,
    interface: InterfaceOpt = None,
) -> None:
    """Print the devices in provisioning mode on the LAN, one JSON object per line."""
    from iotvideo.app import LanConfig

    async def browse() -> list[Any]:
        return await LanConfig(interfaces=interface).get_device_list(timeout)

    for device in asyncio.run(browse()):
        _print(
            {
                "device_id": device.device_id,
                "product_id": device.product_id,
                "host": device.host,
                "port": device.port,
                "bindable": device.bindable,
                "mode": device.mode,
            }
        )


@lan_app.command("send-wifi")
def lan_send_wifi(
    device: Device,
    token: Annotated[str, typer.Option(help="The bind token (iotvideo app netconfig token).")],
    ssid: Annotated[str, typer.Option(help="The Wi-Fi network; empty for a wired camera.")] = "",
    password: PasswordOpt = None,
    password_stdin: PasswordStdinOpt = False,
    interface: InterfaceOpt = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
) -> None:
    """Send Wi-Fi settings and the bind token to a camera on the LAN, sealed for it alone."""
    secret = _password(password, password_stdin)

    async def send(sdk: IoTVideo) -> None:
        sdk.net_config.lan.interfaces = interface
        await sdk.net_config.lan.send_wifi(ssid, secret, token, device)
        _print({"device_id": device, "sent": True})

    _run(cloud, access_id, access_token, None, None, send)
