"""The device's local provisioning endpoint over loopback: what it takes and what it refuses."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from iotvideo.device.provision import MAX_OPEN_HELLOS, LocalEndpoint
from iotvideo.protocol.certificate import DeviceCertificate
from iotvideo.protocol.errors import ErrorCode
from iotvideo.protocol.provision import HELLO_PATH, WIFI_PATH, Hello, WifiConfig, seal
from tests.link.world import World

TOKEN = "bt_" + "k" * 43


@dataclasses.dataclass
class Running:
    endpoint: LocalEndpoint
    http: httpx.AsyncClient
    received: asyncio.Queue[WifiConfig]

    async def hello(self) -> Hello:
        response = await self.http.get(HELLO_PATH)
        assert response.status_code == 200
        return Hello.from_json(response.json())

    async def send(self, body: object) -> tuple[int, int]:
        response = await self.http.post(WIFI_PATH, content=json.dumps(body))
        return response.status_code, int(response.json()["code"])

    async def next_config(self) -> WifiConfig:
        async with asyncio.timeout(5):
            return await self.received.get()


@pytest.fixture
async def running(world: World) -> AsyncIterator[Running]:
    received: asyncio.Queue[WifiConfig] = asyncio.Queue()

    async def on_config(config: WifiConfig) -> None:
        await received.put(config)

    endpoint = LocalEndpoint(
        DeviceCertificate.parse(world.devices[1].certificate),
        on_config=on_config,
        host="127.0.0.1",
        discoverable=False,
    )
    await endpoint.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{endpoint.port}") as http:
            yield Running(endpoint, http, received)
    finally:
        await endpoint.stop()


async def test_sealed_settings_are_taken_once(running: Running) -> None:
    hello = await running.hello()
    sealed = seal(hello, WifiConfig("home", "pw-1", TOKEN)).to_json()
    assert await running.send(sealed) == (200, 0)
    assert await running.next_config() == WifiConfig("home", "pw-1", TOKEN)
    # Replayed by someone who captured it: the hello is spent.
    assert await running.send(sealed) == (403, ErrorCode.IVTermErr_msg_lan_calling_not_allow)


async def test_refusals_change_nothing(running: Running) -> None:
    hello = await running.hello()
    impostor = X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    wrong_key = dataclasses.replace(hello, pub=base64.b64encode(impostor).decode())
    refused = [
        # Sealed with a key that is not the hello's (a wrong AP key).
        await running.send(seal(wrong_key, WifiConfig("evil", "x", TOKEN)).to_json()),
        # The hello was spent on that attempt: a second try with it is refused too.
        await running.send(seal(hello, WifiConfig("evil", "x", TOKEN)).to_json()),
        # Settings for a hello the device never gave.
        await running.send(
            {**seal(await running.hello(), WifiConfig("e", "x", TOKEN)).to_json(), "nonce": "AAAA"}
        ),
        await running.send({"nonce": "n"}),
        await running.send([1, 2]),
    ]
    lan = ErrorCode.IVTermErr_msg_lan_calling_not_allow
    bad = ErrorCode.IVTermErr_msg_user_cmd_param_error
    assert refused == [(403, lan), (403, lan), (403, lan), (400, bad), (400, bad)]
    garbage = await running.http.post(WIFI_PATH, content=b"{not json")
    assert (garbage.status_code, garbage.json()["code"]) == (400, bad)
    huge = await running.http.post(WIFI_PATH, content=b"x" * 9000)
    assert (huge.status_code, huge.json()["code"]) == (
        413,
        ErrorCode.IVMessageError_ExceedsMaxLength,
    )
    assert (await running.http.get(WIFI_PATH)).status_code == 405
    # Nothing got through: the first configuration the device applies is the good one.
    good = WifiConfig("home", "pw-2", TOKEN)
    assert await running.send(seal(await running.hello(), good).to_json()) == (200, 0)
    assert await running.next_config() == good
    assert running.received.empty()


async def test_an_owned_device_takes_no_settings(running: Running) -> None:
    await running.endpoint.set_bindable(False)
    hello = await running.hello()
    sent = await running.send(seal(hello, WifiConfig("home", "pw", TOKEN)).to_json())
    assert sent == (409, ErrorCode.IVNetCfgErr_DevStatusErr)
    await running.endpoint.set_bindable(True)
    good = WifiConfig("home", "pw-3", TOKEN)
    assert await running.send(seal(await running.hello(), good).to_json()) == (200, 0)
    assert await running.next_config() == good


async def test_only_the_latest_hellos_stay_open(running: Running) -> None:
    first = await running.hello()
    for _ in range(MAX_OPEN_HELLOS):
        await running.hello()
    sent = await running.send(seal(first, WifiConfig("home", "pw", TOKEN)).to_json())
    assert sent == (403, ErrorCode.IVTermErr_msg_lan_calling_not_allow)
