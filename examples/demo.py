"""`make demo`: the cloud on its embedded defaults, driven by the official Tencent Cloud client.

Starts `iotvideo cloud` on SQLite with its data under `.demo/`, creates a vendor API key
with `iotvideo keys create`, then creates a product, two devices, an end user, a binding
and an access token through `tencentcloud-sdk-python-iotvideo`, prints them, and keeps the
cloud running until Ctrl-C. `--once` stops after printing (used by the test suite).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iotvideo.v20191126 import iotvideo_client, models

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def _port() -> int:
    wanted = int(os.environ.get("IOTVIDEO_PORT", "8080"))
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            return 0  # busy: let the cloud pick a free port
    return wanted


def start_cloud(data: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "iotvideo", "cloud", "--data", str(data), "--port", str(_port())]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        sys.stderr.write(line)
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return proc, match[1]
    raise SystemExit("the cloud did not start; see the log above")


def create_key(data: Path) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "iotvideo", "keys", "create", "--data", str(data), "--name", "demo"],
        check=True,
        capture_output=True,
        text=True,
    )
    key: dict[str, str] = json.loads(out.stdout)
    return key


def call(client: Any, action: str, **fields: Any) -> Any:
    request = getattr(models, f"{action}Request")()
    request._deserialize(fields)
    return getattr(client, action)(request)


def show(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def demo(url: str, key: dict[str, str]) -> None:
    endpoint = url.removeprefix("http://")
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint))
    client = iotvideo_client.IotvideoClient(
        credential.Credential(key["SecretId"], key["SecretKey"]), "ap-guangzhou", profile
    )
    product = call(
        client,
        "CreateProduct",
        ProductModel="com.example.ipc",
        ProductName="Demo_camera",
        ProductDescription="a simulated camera",
        Features=["ypsxth", "spdxth"],
    ).Data
    devices = call(
        client, "CreateDevices", ProductId=product.ProductId, Number=2, NamePrefix="cam"
    ).Data
    user = call(client, "CreateAppUsr", CunionId="demo-user@example.com")
    binding = call(
        client,
        "CreateBinding",
        AccessId=user.AccessId,
        Tid=devices[0].Tid,
        Role="owner",
        Nick="Front door",
    )
    token = call(
        client, "CreateUsrToken", AccessId=user.AccessId, UniqueId="demo-phone", TtlMinutes=1440
    )

    show(
        "Vendor API key (iotvideo keys create)",
        [("SecretId", key["SecretId"]), ("SecretKey", key["SecretKey"])],
    )
    show(
        "Product (CreateProduct)",
        [
            ("ProductId", product.ProductId),
            ("ProductName", product.ProductName),
            ("Features", ", ".join(product.FuncCode)),
        ],
    )
    for device in devices:
        info = call(client, "DescribeDevice", Tid=device.Tid).Data
        show(
            f"Device {info.DeviceName} (CreateDevices)",
            [("Tid", device.Tid), ("Certificate", device.Certificate[:48] + "...")],
        )
    show(
        "End user, binding and token",
        [
            ("AccessId", user.AccessId),
            ("bound to", f"{devices[0].Tid} as owner"),
            ("binding AccessToken", binding.AccessToken),
            ("user AccessToken", token.AccessToken),
            ("TerminalId", token.TerminalId),
        ],
    )
    bound = call(client, "DescribeBindDev", AccessId=user.AccessId).Data
    show("DescribeBindDev", [(b.Tid, f"{b.DeviceName} ({b.Role})") for b in bound])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="stop after printing")
    parser.add_argument("--data", type=Path, default=ROOT / ".demo", help="data directory")
    args = parser.parse_args()

    proc, url = start_cloud(args.data)
    try:
        demo(url, create_key(args.data))
        console.print(f"\nThe cloud runs at [bold]{url}[/] with its data in {args.data}.")
        if args.once:
            return 0
        console.print("Press Ctrl-C to stop it.")
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert proc.stderr is not None
        sys.stderr.write(proc.stderr.read())
        proc.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
