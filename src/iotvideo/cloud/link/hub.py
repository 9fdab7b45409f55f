"""Routing between link sessions, within and across cloud instances, over the bus.

Channels (all JSON messages):

- ``iv:dev:<tid>``: to the device's session, wherever it is: requests, kicks. Exactly one
  instance subscribes while the device is online, so "no receiver" means offline.
- ``iv:inst:<instance>``: replies to requests this instance asked.
- ``iv:push:<tid>``: from a device to the apps watching it (property changes, events).
- ``iv:user:<access_id>``: the user's tokens or bindings changed; sessions re-check.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from iotvideo.cloud.bus import Bus, MemoryBus
from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = ["DeviceEndpoint", "Hub", "Outcome", "PushTarget", "UserTarget"]

log = logging.getLogger("iotvideo.cloud.link")

TargetT = TypeVar("TargetT")


@dataclass(frozen=True)
class Outcome:
    """A device's answer to a request: a seed code, data, and a message."""

    code: int
    data: dict[str, Any] = field(default_factory=dict)
    msg: str = ""

    def raise_for_code(self) -> dict[str, Any]:
        if self.code != 0:
            raise IVError.of(self.code, self.msg or None)
        return self.data


class DeviceEndpoint(Protocol):
    """A device session as the hub sees it."""

    tid: str
    sid: str

    def on_request(
        self, reply_to: str, rid: str, op: str, data: dict[str, Any], timeout: float
    ) -> None: ...

    def on_kick(self, code: int, msg: str) -> None: ...

    def on_device_push(self, op: str, data: dict[str, Any]) -> None: ...

    def on_bus_back(self) -> None:
        """The bus was away: requests for this device may have found no one."""


class PushTarget(Protocol):
    def on_push(self, tid: str, op: str, data: dict[str, Any]) -> None: ...


class UserTarget(Protocol):
    def on_user_event(self, access_id: str, event: dict[str, Any]) -> None: ...


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class Hub:
    """This instance's end of the bus."""

    def __init__(self, bus: Bus, instance_id: str) -> None:
        self.bus = bus
        self.instance_id = instance_id
        self._rids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Outcome]] = {}
        self._devices: dict[str, tuple[DeviceEndpoint, Callable[[bytes], None]]] = {}
        self._pushes: _Fanout[PushTarget] = _Fanout(bus, "iv:push:", _to_app)
        self._users: _Fanout[UserTarget] = _Fanout(bus, "iv:user:", _to_user)
        #: Seconds the last probe took through the bus to this instance and back (a
        #: publish on Redis and its delivery), None before the first or while it is out.
        self.lag: float | None = None
        self._probe_sent = 0.0
        bus.on_reconnect.append(self._bus_back)

    def _bus_back(self) -> None:
        """Messages published while the bus was away are lost: every app session here is
        told (``bus.back``), so that its app fetches the events it missed, and every
        device session, so that writes stored meanwhile reach its device."""
        self._users.deliver_local({"k": "bus.back"})
        for device, _handler in list(self._devices.values()):
            device.on_bus_back()

    async def start(self) -> None:
        await self.bus.subscribe(f"iv:inst:{self.instance_id}", self._on_reply)

    async def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        await self.bus.unsubscribe(f"iv:inst:{self.instance_id}", self._on_reply)

    # Devices

    async def attach(self, device: DeviceEndpoint) -> None:
        """Route the device's channel to this session, after ending any other session of it."""
        await self.kick(
            device.tid, ErrorCode.IVTermErr_msg_calling_duplicate_call, "replaced", device.sid
        )
        handler = self._device_handler(device)
        self._devices[device.tid] = (device, handler)
        await self.bus.subscribe(f"iv:dev:{device.tid}", handler)

    async def detach(self, device: DeviceEndpoint) -> None:
        held = self._devices.get(device.tid)
        if held is None or held[0] is not device:
            return
        del self._devices[device.tid]
        await self.bus.unsubscribe(f"iv:dev:{device.tid}", held[1])

    def local_device(self, tid: str) -> DeviceEndpoint | None:
        held = self._devices.get(tid)
        return held[0] if held else None

    async def push_device(self, tid: str, op: str, data: dict[str, Any]) -> None:
        """A push to the device's session, if it is online anywhere."""
        await self.bus.publish(f"iv:dev:{tid}", _encode({"k": "push", "op": op, "data": data}))

    async def online(self, tid: str) -> bool:
        """Whether the device has a session on some instance."""
        return await self.bus.publish(f"iv:dev:{tid}", b'{"k":"probe"}') > 0

    async def kick(self, tid: str, code: int, msg: str, except_sid: str = "") -> int:
        """End the device's session, wherever it is; return how many instances heard it."""
        body = {"k": "kick", "code": int(code), "msg": msg, "except": except_sid}
        return await self.bus.publish(f"iv:dev:{tid}", _encode(body))

    def _device_handler(self, device: DeviceEndpoint) -> Callable[[bytes], None]:
        def handle(raw: bytes) -> None:
            body = json.loads(raw)
            if body["k"] == "req":
                device.on_request(
                    body["from"], body["rid"], body["op"], body["data"], body["timeout"]
                )
            elif body["k"] == "kick" and body.get("except") != device.sid:
                device.on_kick(body["code"], body["msg"])
            elif body["k"] == "push":
                device.on_device_push(body["op"], body["data"])

        return handle

    # Requests to devices and their replies

    async def ask(self, tid: str, op: str, data: dict[str, Any], timeout: float) -> Outcome:
        """Send a request to the device's session and wait for its answer.

        8000 if the device is not online anywhere; 21083 if it does not answer in time.
        """
        rid = f"{self.instance_id}.{next(self._rids)}"
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            body: dict[str, Any] = {"k": "req", "from": self.instance_id, "rid": rid}
            body.update(op=op, data=data, timeout=timeout)
            if await self.bus.publish(f"iv:dev:{tid}", _encode(body)) == 0:
                raise IVError.of(ErrorCode.IVASrvErr_dst_offline, f"device {tid} is offline")
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise IVError.of(
                ErrorCode.IVAckErr_NoResponse, f"device {tid} did not answer in {timeout:g} s"
            ) from None
        finally:
            self._pending.pop(rid, None)

    async def answer(self, reply_to: str, rid: str, outcome: Outcome) -> None:
        body = {
            "k": "rep",
            "rid": rid,
            "code": outcome.code,
            "data": outcome.data,
            "msg": outcome.msg,
        }
        await self.bus.publish(f"iv:inst:{reply_to}", _encode(body))

    async def probe(self) -> None:
        """Send a probe through the bus to this instance; :attr:`lag` when it is back.
        A probe still out when the next one goes counts its waiting so far."""
        now = time.monotonic()
        if self._probe_sent:
            self.lag = max(self.lag or 0.0, now - self._probe_sent)  # the last one is late
        self._probe_sent = now
        await self.bus.publish(f"iv:inst:{self.instance_id}", b'{"k":"lag"}')

    async def instance_alive(self, instance_id: str) -> bool | None:
        """Whether instance ``instance_id`` holds its bus subscription (its process is
        alive: the broker drops a dead process's subscriptions when its connection
        closes); None when the bus cannot tell (it is away, or in process only)."""
        if isinstance(self.bus, MemoryBus):
            return None
        try:
            return await self.bus.publish(f"iv:inst:{instance_id}", b'{"k":"alive"}') > 0
        except IVError:
            return None

    def _on_reply(self, raw: bytes) -> None:
        body = json.loads(raw)
        if body.get("k") == "alive":
            return
        if body.get("k") == "lag":
            if self._probe_sent:
                self.lag, self._probe_sent = time.monotonic() - self._probe_sent, 0.0
            return
        future = self._pending.get(body.get("rid", ""))
        if future is not None and not future.done():
            future.set_result(Outcome(body["code"], body.get("data") or {}, body.get("msg", "")))

    # Pushes to apps

    async def push(self, tid: str, op: str, data: dict[str, Any]) -> None:
        await self.bus.publish(f"iv:push:{tid}", _encode({"op": op, "data": data}))

    async def watch(self, tid: str, target: PushTarget) -> None:
        await self._pushes.add(tid, target)

    async def unwatch(self, tid: str, target: PushTarget) -> None:
        await self._pushes.remove(tid, target)

    # Users

    async def user_changed(self, access_id: str) -> None:
        """Tell every session of the user that its tokens or bindings changed."""
        await self.user_event(access_id, {"k": "changed"})

    async def user_event(self, access_id: str, event: dict[str, Any]) -> None:
        """Send ``event`` to every session of the user (``k`` says what it is)."""
        await self.bus.publish(f"iv:user:{access_id}", _encode(event))

    async def watch_user(self, access_id: str, target: UserTarget) -> None:
        await self._users.add(access_id, target)

    async def unwatch_user(self, access_id: str, target: UserTarget) -> None:
        await self._users.remove(access_id, target)


class _Fanout(Generic[TargetT]):
    """Local targets per key, behind one bus subscription per key and instance."""

    def __init__(
        self, bus: Bus, prefix: str, deliver: Callable[[str, TargetT, bytes], None]
    ) -> None:
        self._bus = bus
        self._prefix = prefix
        self._deliver = deliver
        self._targets: dict[str, set[TargetT]] = {}
        self._handlers: dict[str, Callable[[bytes], None]] = {}

    async def add(self, key: str, target: TargetT) -> None:
        targets = self._targets.setdefault(key, set())
        first = not targets
        targets.add(target)
        if first:
            handler = self._handler(key)
            self._handlers[key] = handler
            await self._bus.subscribe(self._prefix + key, handler)

    async def remove(self, key: str, target: TargetT) -> None:
        targets = self._targets.get(key)
        if targets is None or target not in targets:
            return
        targets.discard(target)
        if not targets:
            del self._targets[key]
            await self._bus.unsubscribe(self._prefix + key, self._handlers.pop(key))

    def deliver_local(self, body: dict[str, Any]) -> None:
        """``body`` to every local target once (not through the bus)."""
        raw = _encode(body)
        done: set[int] = set()
        for key, targets in list(self._targets.items()):
            for target in list(targets):
                if id(target) not in done:
                    done.add(id(target))
                    self._deliver(key, target, raw)

    def _handler(self, key: str) -> Callable[[bytes], None]:
        def handle(raw: bytes) -> None:
            for target in list(self._targets.get(key, ())):
                self._deliver(key, target, raw)

        return handle


def _to_app(tid: str, target: PushTarget, raw: bytes) -> None:
    body = json.loads(raw)
    target.on_push(tid, body["op"], body["data"])


def _to_user(access_id: str, target: UserTarget, raw: bytes) -> None:
    target.on_user_event(access_id, json.loads(raw))
