"""``iotvideo vendor call|publish-model|quickstart``: the vendor API from the shell.

Requests are signed with TC3-HMAC-SHA256 exactly as the official Tencent Cloud clients sign
them, with the key from ``IOTVIDEO_SECRET_ID`` and ``IOTVIDEO_SECRET_KEY`` (``iotvideo keys
create --format env`` prints both), against ``IOTVIDEO_CLOUD``. These commands need only
the base distribution: they talk to a cloud over HTTP, wherever it runs.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from iotvideo.cli._common import die, stderr
from iotvideo.cli.cloud import vendor_app
from iotvideo.protocol import tc3
from iotvideo.transport import describe_network_error, http_url

__all__ = ["VendorCallError", "VendorClient"]

DEFAULT_CLOUD = "http://127.0.0.1:8080"
_ACTION = re.compile(r"^[A-Z][A-Za-z0-9]{1,63}\Z")


@dataclass
class VendorCallError(Exception):
    """The cloud refused an action: its API error code (``InvalidParameterValue``...)."""

    code: str
    message: str
    request_id: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message} (RequestId {self.request_id})"


class VendorClient:
    """A minimal TC3-signing client of the vendor API (no official SDK needed)."""

    def __init__(self, cloud: str, secret_id: str, secret_key: str, *, timeout: float = 30) -> None:
        self.url = http_url(cloud)
        self.secret_id = secret_id
        self.secret_key = secret_key
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run ``action``; return its ``Response`` fields or raise :class:`VendorCallError`
        (refused) or :class:`httpx.HTTPError` (not reached)."""
        body = json.dumps(params, ensure_ascii=False).encode()
        url = httpx.URL(self.url + "/")
        headers = tc3.sign_request(
            self.secret_id,
            self.secret_key,
            action=action,
            payload=body,
            host=url.netloc.decode("ascii"),
            timestamp=int(time.time()),
            sign_action=True,  # the request cannot be replayed as another action
        )
        response = self._http.post(url, content=body, headers=headers)
        try:
            answer = response.json()["Response"]
            if not isinstance(answer, dict):
                raise TypeError(answer)
        except (ValueError, KeyError, TypeError):
            raise VendorCallError(
                "NotAnIotvideoCloud",
                f"{self.url} answered HTTP {response.status_code} without a vendor-API "
                "response: is this the iotvideo cloud's URL?",
                "",
            ) from None
        error = answer.get("Error")
        if isinstance(error, dict):
            raise VendorCallError(
                str(error.get("Code")), str(error.get("Message")), str(answer.get("RequestId"))
            )
        return answer


CloudOpt = Annotated[
    str,
    typer.Option("--cloud", envvar="IOTVIDEO_CLOUD", metavar="URL", help="The cloud's URL."),
]
SecretIdOpt = Annotated[
    str | None,
    typer.Option(
        "--secret-id",
        envvar="IOTVIDEO_SECRET_ID",
        metavar="ID",
        help="The vendor API key's SecretId (iotvideo keys create).",
        show_default=False,
    ),
]
SecretKeyStdinOpt = Annotated[
    bool,
    typer.Option(
        "--secret-key-stdin",
        help="Read the SecretKey from the first line of standard input instead of "
        "IOTVIDEO_SECRET_KEY (it never goes on the command line).",
    ),
]


def _client(cloud: str, secret_id: str | None, key_from_stdin: bool) -> VendorClient:
    secret_key = (
        sys.stdin.readline().strip() if key_from_stdin else os.environ.get("IOTVIDEO_SECRET_KEY")
    )
    if not secret_id or not secret_key:
        die(
            "no vendor API key: set IOTVIDEO_SECRET_ID and IOTVIDEO_SECRET_KEY (`iotvideo keys "
            "create --data DIR --format env` prints both), or give --secret-id and "
            "--secret-key-stdin.",
            2,
        )
    if not cloud.startswith(("http://", "https://", "ws://", "wss://")):
        die(f"--cloud must be an http:// or https:// URL, not {cloud!r}", 2)
    return VendorClient(cloud, secret_id, secret_key)


def _call(client: VendorClient, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """One action; a refusal or an unreachable cloud ends the command with what to do."""
    try:
        return client.call(action, params)
    except VendorCallError as exc:
        die(f"{action}: {exc}")
    except httpx.HTTPError as exc:
        die(f"cannot reach {client.url}: {describe_network_error(exc)}")


def _params(text: str) -> dict[str, Any]:
    source = "the parameters"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            die(f"cannot read {source}: {exc}", 2)
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        die(f"{source} are not JSON: {exc}", 2)
    if not isinstance(params, dict):
        die(f'{source} must be a JSON object, e.g. \'{{"ProductId": "..."}}\'', 2)
    return params


@vendor_app.command("call")
def call(
    action: Annotated[
        str, typer.Argument(metavar="ACTION", help="The action, e.g. DescribeProducts.")
    ],
    params: Annotated[
        str,
        typer.Argument(
            metavar="PARAMS",
            help="The request's parameters: a JSON object, @FILE, or @- for standard input.",
        ),
    ] = "{}",
    cloud: CloudOpt = DEFAULT_CLOUD,
    secret_id: SecretIdOpt = None,
    secret_key_stdin: SecretKeyStdinOpt = False,
) -> None:
    """Call one vendor-API action and print its response as JSON.

    Example: `iotvideo vendor call DescribeProducts '{"Limit": 10, "Offset": 0}'`.
    A refused call prints the API's error code and message and exits with status 1.
    The actions and their parameters are in docs/vendor-api.md.
    """
    if not _ACTION.match(action):
        die(f"{action!r} is not an action name (e.g. DescribeProducts)", 2)
    body = _params(params)
    if secret_key_stdin and params == "@-":
        die("standard input cannot carry both the SecretKey and the parameters", 2)
    client = _client(cloud, secret_id, secret_key_stdin)
    try:
        answer = _call(client, action, body)
    finally:
        client.close()
    print(json.dumps(answer, ensure_ascii=False, indent=2))


def _publish(client: VendorClient, product_id: str, model: dict[str, Any]) -> None:
    _call(
        client,
        "RunIotModel",
        {"ProductId": product_id, "IotModel": json.dumps(model, ensure_ascii=False)},
    )


@vendor_app.command("publish-model")
def publish_model(
    product_id: Annotated[str, typer.Argument(metavar="PRODUCT_ID", help="The product.")],
    model_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="[MODEL_FILE]",
            help="A thing-model JSON file (default: the simulated camera's model, as "
            "`iotvideo device model` prints it).",
            show_default=False,
        ),
    ] = None,
    gateway_channels: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            metavar="N",
            help="Publish the model of gateway devices with N channels (`iotvideo gateway`: "
            "1 for cameras, the channel count for NVRs).",
        ),
    ] = None,
    cloud: CloudOpt = DEFAULT_CLOUD,
    secret_id: SecretIdOpt = None,
    secret_key_stdin: SecretKeyStdinOpt = False,
) -> None:
    """Publish a product's thing model (RunIotModel): its devices' properties, actions
    and events. Without a file, the model `iotvideo device run` (the demo camera) needs;
    with --gateway-channels, the model of `iotvideo gateway`'s devices."""
    from iotvideo.device.gateway.model import gateway_model
    from iotvideo.device.simulator import DEMO_MODEL

    if model_file is not None and gateway_channels is not None:
        die("give a MODEL_FILE or --gateway-channels, not both", 2)
    model = DEMO_MODEL if gateway_channels is None else gateway_model(gateway_channels)
    if model_file is not None:
        try:
            model = json.loads(model_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            die(f"cannot read a JSON thing model from {model_file}: {exc}", 2)
        if not isinstance(model, dict):
            die(f"{model_file} must hold a JSON object (ProReadonly, ProWritable, ...)", 2)
    client = _client(cloud, secret_id, secret_key_stdin)
    try:
        _publish(client, product_id, model)
    finally:
        client.close()
    stderr.print(f"thing model of {product_id} published", highlight=False)


def _private_file(path: Path, text: str) -> None:
    """Write a secret (certificate, tokens) readable by its owner only."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


@vendor_app.command("quickstart")
def quickstart(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Where to write the device certificates and app.env (created if needed).",
        ),
    ],
    devices: Annotated[
        int, typer.Option(min=1, max=100, metavar="N", help="How many cameras to create.")
    ] = 1,
    user: Annotated[
        str,
        typer.Option(metavar="CUNIONID", help="Your end user's id in your own user system."),
    ] = "quickstart@example.com",
    ttl_minutes: Annotated[
        int,
        typer.Option(
            min=1, max=525600, metavar="MINUTES", help="How long the app's AccessToken lasts."
        ),
    ] = 7 * 24 * 60,
    cloud: CloudOpt = DEFAULT_CLOUD,
    secret_id: SecretIdOpt = None,
    secret_key_stdin: SecretKeyStdinOpt = False,
) -> None:
    """From a vendor key to a camera you can watch: a product with the simulated camera's
    thing model, N devices (a certificate file each), an end user who owns them, and the
    app's credentials in DIR/app.env. Prints a JSON summary and the next commands to run.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        die(f"cannot create {out}: {exc.strerror}", 2)
    client = _client(cloud, secret_id, secret_key_stdin)
    try:
        summary = _quickstart(client, out, devices, user, ttl_minutes)
    finally:
        client.close()
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    tid, cert = summary["Devices"][0]["Tid"], summary["Devices"][0]["CertificateFile"]
    stderr.print(
        "\nNext, run the camera, load the app's credentials, and ask the camera:\n"
        f"  iotvideo device run --cert {cert} --cloud {client.url} &\n"
        f"  set -a; . {summary['EnvFile']}; set +a\n"
        f"  iotvideo app prop get {tid} ProReadonly\n"
        f"Then watch it: iotvideo app play {tid}  (or snapshot, record, talk; see "
        "iotvideo app --help)",
        highlight=False,
        markup=False,
    )


def _quickstart(
    client: VendorClient, out: Path, count: int, user: str, ttl_minutes: int
) -> dict[str, Any]:
    from iotvideo.device.simulator import DEMO_MODEL

    with stderr.status("creating the product") as status:
        product = _call(
            client,
            "CreateProduct",
            {
                "ProductModel": "quickstart.camera",
                "ProductName": "Quickstart_camera",
                "ProductDescription": "simulated cameras made by iotvideo vendor quickstart",
                "Features": ["ypsxth", "spdxth"],
            },
        )["Data"]
        product_id = product["ProductId"]
        status.update("publishing its thing model")
        _publish(client, product_id, DEMO_MODEL)
        status.update(f"creating {count} device(s)")
        created = _call(
            client,
            "CreateDevices",
            {"ProductId": product_id, "Number": count, "NamePrefix": "cam"},
        )["Data"]
        status.update("creating the end user, bindings and token")
        access_id = _call(client, "CreateAppUsr", {"CunionId": user})["AccessId"]
        devices = []
        for device in created:
            cert = out / f"{device['Tid']}.cert"
            _private_file(cert, device["Certificate"] + "\n")
            binding = {"AccessId": access_id, "Tid": device["Tid"], "Role": "owner"}
            _call(client, "CreateBinding", {**binding, "ForceBind": True})
            devices.append({"Tid": device["Tid"], "CertificateFile": str(cert)})
        token = _call(
            client,
            "CreateUsrToken",
            {"AccessId": access_id, "UniqueId": "quickstart-cli", "TtlMinutes": ttl_minutes},
        )
    env_file = out / "app.env"
    _private_file(
        env_file,
        f"IOTVIDEO_CLOUD={client.url}\n"
        f"IOTVIDEO_ACCESS_ID={access_id}\n"
        f"IOTVIDEO_ACCESS_TOKEN={token['AccessToken']}\n",
    )
    return {
        "ProductId": product_id,
        "Devices": devices,
        "AccessId": access_id,
        "TokenExpireTime": token.get("ExpireTime"),
        "EnvFile": str(env_file),
    }
