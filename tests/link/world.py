"""A vendor's world for link tests: a product with the demo model, devices, users."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from iotvideo.app import DeviceMessage, IoTVideo
from iotvideo.device import DeviceClient
from iotvideo.device.simulator import DEMO_MODEL
from iotvideo.protocol.link import Backoff
from tests.cloud.official import call, client, refused
from tests.support import CloudAddress, vendor_of

T = TypeVar("T")


def fast_backoff() -> Backoff:
    return Backoff(base=0.05, cap=0.5)


@dataclass(frozen=True)
class User:
    access_id: str
    token: str
    binding_token: str = ""


@dataclass(frozen=True)
class Device:
    tid: str
    certificate: str


@dataclass
class World:
    cloud: Any
    api: Any
    product_id: str
    devices: list[Device]
    owner: User
    guest: User
    stranger: User
    vendor_id: str = ""
    key: tuple[str, str] = ("", "")

    def use(self, cloud: CloudAddress) -> None:
        """Send vendor calls to another cloud instance from now on."""
        self.cloud = cloud
        self.api = client(cloud, self.key)

    @property
    def device(self) -> Device:
        return self.devices[0]

    def vendor(self, action: str, **fields: Any) -> Any:
        return call(self.api, action, **fields)

    async def avendor(self, action: str, **fields: Any) -> Any:
        """A vendor call that does not block the event loop the clients run on."""
        return await asyncio.to_thread(call, self.api, action, **fields)

    async def arefused(self, code: str, action: str, **fields: Any) -> Any:
        """A vendor call that must fail with ``code`` (off the event loop)."""
        return await asyncio.to_thread(refused, code, call, self.api, action, **fields)

    def new_user(self, cunion: str, *, role: str | None = None, tid: str | None = None) -> User:
        access_id = call(self.api, "CreateAppUsr", CunionId=cunion).AccessId
        binding = ""
        if role is not None:
            binding = call(
                self.api, "CreateBinding", AccessId=access_id, Tid=tid or self.device.tid, Role=role
            ).AccessToken
        token = call(
            self.api, "CreateUsrToken", AccessId=access_id, UniqueId="test", TtlMinutes=60
        ).AccessToken
        return User(access_id, token, binding)


def make_world(cloud: CloudAddress, *, devices: int = 2) -> World:
    key = cloud.new_key()
    api = client(cloud, key)
    pid = call(
        api, "CreateProduct", ProductModel="ipc", ProductName="sim", ProductDescription="sim"
    ).Data.ProductId
    call(api, "RunIotModel", ProductId=pid, IotModel=json.dumps(DEMO_MODEL))
    made = call(api, "CreateDevices", ProductId=pid, Number=devices).Data
    world = World(
        cloud,
        api,
        pid,
        [Device(d.Tid, d.Certificate) for d in made],
        User("", ""),
        User("", ""),
        User("", ""),
        vendor_id=vendor_of(cloud.db, key[0]),
        key=key,
    )
    world.owner = world.new_user("owner", role="owner")
    world.guest = world.new_user("guest", role="guest")
    world.stranger = world.new_user("stranger")
    return world


@asynccontextmanager
async def app_sdk(
    urls: str | list[str], user: User, *, wait: bool = True
) -> AsyncIterator[IoTVideo]:
    sdk = IoTVideo()
    sdk.setup(urls, backoff=fast_backoff())
    try:
        await sdk.register(user.access_id, user.token, wait=wait, timeout=20)
        yield sdk
    finally:
        await sdk.unregister()


@asynccontextmanager
async def device_client(
    urls: str | list[str], device: Device, setup: Callable[[DeviceClient], None] | None = None
) -> AsyncIterator[DeviceClient]:
    dc = DeviceClient(device.certificate, urls, backoff=fast_backoff())
    if setup is not None:
        setup(dc)
    try:
        await dc.start(timeout=20)
        yield dc
    finally:
        await dc.stop()


class Inbox:
    """Collects an app's pushes from the moment it is made; wait on them in order."""

    def __init__(self, sdk: IoTVideo) -> None:
        self.queue: asyncio.Queue[DeviceMessage] = asyncio.Queue()
        self.remove = sdk.message.add_listener(self.queue.put_nowait)

    async def next(
        self, predicate: Callable[[DeviceMessage], bool], *, timeout: float = 10
    ) -> DeviceMessage:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.queue.get()
                if predicate(message):
                    return message

    async def property(self, path: str, *, timeout: float = 10, **value: Any) -> DeviceMessage:
        """The next change of ``path`` whose value has the given attributes."""

        def matches(m: DeviceMessage) -> bool:
            return (
                m.kind == "property"
                and m.name == path
                and isinstance(m.value, dict)
                and all(m.value.get(k) == v for k, v in value.items())
            )

        return await self.next(matches, timeout=timeout)


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 10, every: float = 0.05
) -> T:
    """Retry ``check`` until it stops raising AssertionError; for state another process
    updates on its own schedule (there is nothing to wait on from here)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await check()
            except AssertionError:
                await asyncio.sleep(every)


class Heard:
    """The ``n`` of every ``{"n": ...}`` event an app receives, in order (repeats kept,
    so a test sees a doubled delivery)."""

    def __init__(self, sdk: IoTVideo) -> None:
        self.values: list[int] = []
        self._changed = asyncio.Event()
        sdk.message.add_listener(self._on_message)

    def _on_message(self, message: DeviceMessage) -> None:
        if message.kind == "event" and isinstance(message.value, dict):
            self.values.append(int(message.value["n"]))
            self._changed.set()

    async def until(self, n: int, timeout: float = 30) -> None:
        """Until event ``n`` has arrived."""
        async with asyncio.timeout(timeout):
            while n not in self.values:
                self._changed.clear()
                await self._changed.wait()
