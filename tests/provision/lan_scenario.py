"""The phone's side of a LAN provisioning flow, run inside the phone's network namespace.

    python -m tests.provision.lan_scenario run --cloud URL --db DB --tid TID --mode wired|ap

(``setup`` makes the product and devices, ``user`` a fresh app user, ``owner`` one bound
to ``--tid`` as its owner.)

Registers a user, gets a bind token, finds the camera with DNS-SD, sends it the settings
sealed for it (Wi-Fi and token for AP, the token alone for a wired camera), waits for the
net-config result, binds with the token, subscribes, reads a property. Prints one JSON
object with what happened (the test asserts on it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from iotvideo.protocol.errors import IVError
from tests.cloud.official import call, client
from tests.link.world import User, app_sdk
from tests.netns import PHONE_IP
from tests.support import CloudAddress


async def scenario(args: argparse.Namespace, key: tuple[str, str]) -> dict[str, Any]:
    api = _api(args)
    user = await asyncio.to_thread(new_user, api)
    access_id = user.access_id
    report: dict[str, Any] = {}
    async with app_sdk(args.cloud, user) as sdk:
        sdk.net_config.lan.interfaces = [PHONE_IP]
        online = sdk.net_config.next_net_cfg_result()
        bind_token = await sdk.net_config.get_bind_token()
        found = await sdk.net_config.lan.get_device_list(timeout=args.browse)
        report["found"] = [
            {"tid": d.device_id, "host": d.host, "bindable": d.bindable, "mode": d.mode}
            for d in found
        ]
        ssid, password = ("", "") if args.mode == "wired" else ("home-net", "correct horse")
        if args.wrong_identity:
            # Send to the camera but check it against another device's key: must be refused.
            try:
                target = next(d for d in found if d.device_id == args.tid)
                await sdk.net_config.lan.send_wifi(
                    ssid, password, bind_token, args.wrong_identity, device=target
                )
            except IVError as exc:
                report["refused"] = int(exc.code)
            return report
        await sdk.net_config.lan.send_wifi(ssid, password, bind_token, args.tid)
        sent = time.time()
        try:
            async with asyncio.timeout(20):
                report["observed"] = [await online, 0]
        except IVError as exc:
            report["observed"] = [None, int(exc.code)]
        report["callback_ms"] = (time.time() - sent) * 1000
        bound = await asyncio.to_thread(
            call,
            api,
            "CreateBinding",
            AccessId=access_id,
            Tid=args.tid,
            Role="owner",
            BindToken=bind_token,
        )
        await sdk.net_config.subscribe_device(bound.AccessToken, args.tid)
        report["read"] = await sdk.message.read_property(args.tid, "ProWritable._logLevel.setVal")
        again = await sdk.net_config.lan.get_device_list(timeout=args.browse)
        report["bindable_after"] = [d.bindable for d in again if d.device_id == args.tid]
    return report


def _api(args: argparse.Namespace) -> Any:
    return client(
        CloudAddress(data=Path(), db=args.db, url=args.cloud), (args.secret_id, args.secret_key)
    )


def new_user(api: Any) -> User:
    """A fresh app user with a 30-minute access token."""
    access_id = call(api, "CreateAppUsr", CunionId=f"phone-{time.time()}").AccessId
    token = call(
        api, "CreateUsrToken", AccessId=access_id, UniqueId="phone", TtlMinutes=30
    ).AccessToken
    return User(access_id, token)


def setup(args: argparse.Namespace) -> list[dict[str, str]]:
    """A product with the demo model and N unbound devices; their Tids and Certificates."""
    from iotvideo.device.simulator import DEMO_MODEL

    api = _api(args)
    pid = call(
        api, "CreateProduct", ProductModel="ipc", ProductName="lan", ProductDescription="lan"
    ).Data.ProductId
    call(api, "RunIotModel", ProductId=pid, IotModel=json.dumps(DEMO_MODEL))
    made = call(api, "CreateDevices", ProductId=pid, Number=args.devices).Data
    return [{"tid": d.Tid, "certificate": d.Certificate} for d in made]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=["setup", "user", "owner", "run"])
    parser.add_argument("--cloud", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--secret-id", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--tid", default="")
    parser.add_argument("--mode", choices=["wired", "ap"], default="ap")
    parser.add_argument("--browse", type=float, default=1.5)
    parser.add_argument("--wrong-identity", default="")
    args = parser.parse_args()
    if args.step == "setup":
        print(json.dumps(setup(args)), flush=True)
    elif args.step in ("user", "owner"):
        api = _api(args)
        user = new_user(api)
        if args.step == "owner":  # bound to --tid as its owner
            call(api, "CreateBinding", AccessId=user.access_id, Tid=args.tid, Role="owner")
        print(json.dumps({"access_id": user.access_id, "token": user.token}), flush=True)
    else:
        print(
            json.dumps(asyncio.run(scenario(args, (args.secret_id, args.secret_key)))), flush=True
        )
    sys.exit(0)


if __name__ == "__main__":
    main()
