"""``MessageMgr``: thing-model messages and passthrough data (the seed's 消息管理).

Every call is an ``asyncio.Task`` you may ``await`` for the result, or leave running with
a ``completion`` callback, the seed's style::

    temperature = await sdk.message.read_property(device_id, "ProReadonly.temperature")

    sdk.message.read_property(device_id, "", completion=lambda json, error: ...)

Values come back as Python values; callbacks get JSON text, as in the seed. Values you
write are JSON text too (``"1"``, ``'"text"'``, ``'{"setVal": 1}'``); any other Python value
is turned into JSON for you.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from iotvideo.app.calls import Completion, call
from iotvideo.app.status import LinkStatus
from iotvideo.protocol import link
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.link import Push
from iotvideo.transport import RetrySoon

if TYPE_CHECKING:
    from iotvideo.app.sdk import IoTVideo

__all__ = ["MAX_DATA_SIZE", "DeviceMessage", "MessageDelegate", "MessageMgr"]

log = logging.getLogger("iotvideo.app")

T = TypeVar("T")
#: Largest passthrough message (send_data), bytes.
MAX_DATA_SIZE = link.MAX_DATA_SIZE
#: A catch-up asks again for the events numbered up to this many seconds before the newest
#: one delivered: the cloud numbers an event when it stores it, but stores commit (and are
#: pushed) in any order across instances, so one numbered first may arrive second.
CATCH_UP_LOOKBACK = 10.0
#: Events remembered as delivered: each is delivered once, however often it arrives.
SEEN_EVENTS = 8192


class MessageDelegate(Protocol):
    """The seed's IVMessageDelegate."""

    def did_receive_event(self, event: str, topic: str) -> None: ...

    def did_update_property(self, json: str, path: str, device_id: str) -> None: ...


@dataclass(frozen=True)
class DeviceMessage:
    """A push from a device: ``kind`` is ``event`` (``name`` is the topic) or ``property``
    (``name`` is the path)."""

    kind: str
    device_id: str
    name: str
    value: Any
    t: int

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "device_id": self.device_id,
            "name": self.name,
            "value": self.value,
            "t": self.t,
        }


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class MessageMgr:
    def __init__(self, sdk: IoTVideo) -> None:
        self._sdk = sdk
        self.delegate: MessageDelegate | Any = None
        self._listeners: list[Callable[[DeviceMessage], object]] = []
        sdk.add_push_handler("prop", self._on_prop)
        sdk.add_push_handler("event", self._on_event)
        #: The newest event seen (the cloud's ``seq``): after a reconnect, or when the
        #: cloud says pushes were lost (``resync``: its bus was away), the events missed
        #: are fetched and delivered like pushed ones, each once.
        self.event_cursor: int | None = None
        self._seen: deque[object] = deque()
        self._seen_set: set[object] = set()
        #: (monotonic time, cursor) as the cursor moved, the last CATCH_UP_LOOKBACK s,
        #: and the cursor before them: where a catch-up starts.
        self._marks: deque[tuple[float, int]] = deque()
        self._base = 0
        self._catching = asyncio.Lock()
        #: Fetches again after a failure; offline, the next login does.
        self._retry = RetrySoon(
            self._fetch_missed, lambda: sdk.link_status is LinkStatus.ONLINE, first=0.5
        )
        sdk.add_login_hook(self._catch_up)
        sdk.add_push_handler("resync", lambda _push: self._retry.ask(0.0))

    # Pushes

    def add_listener(self, listener: Callable[[DeviceMessage], object]) -> Callable[[], None]:
        """Call ``listener`` for every event and property change; returns a remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def messages(
        self, device_id: str | None = None, *, maxsize: int = 1000
    ) -> AsyncIterator[DeviceMessage]:
        """Events and property changes as they arrive (of one device, or all)."""
        queue: asyncio.Queue[DeviceMessage] = asyncio.Queue(maxsize)

        def put(message: DeviceMessage) -> None:
            if device_id is None or message.device_id == device_id:
                if queue.full():
                    queue.get_nowait()  # a slow reader loses the oldest, not the newest
                queue.put_nowait(message)

        remove = self.add_listener(put)
        try:
            while True:
                yield await queue.get()
        finally:
            remove()

    def _on_prop(self, push: Push) -> None:
        data = push.data
        value = data.get("value")
        message = DeviceMessage(
            "property", str(data.get("tid")), str(data.get("path")), value, _t(value)
        )
        update = getattr(self.delegate, "did_update_property", None)
        if update is not None:
            update(json.dumps(value), message.name, message.device_id)
        self._notify(message)

    async def _catch_up(self) -> None:
        """At login: start the cursor (first login), or deliver what was missed. A
        failure (the cloud's database away) is tried again shortly, not raised."""
        if self.event_cursor is None:
            self.event_cursor = self._base = int(self._sdk.login_reply.get("event_seq", 0))
            return
        if not await self._fetch_missed():
            self._retry.ask()

    async def _fetch_missed(self) -> bool:
        """Deliver the events after the floor (each once); False when the cloud could
        not answer."""
        async with self._catching:
            after = self._floor()
            try:
                while True:
                    got = await self._sdk.request("event.since", {"after": after})
                    events = got.get("events", [])
                    for event in events:
                        self._deliver_event(event)
                        after = max(after, int(event.get("seq", after)))
                    if not (got.get("more") and events):
                        return True
            except IVError as exc:
                log.warning("could not fetch the events missed (%s); trying again", exc)
                return False

    def _floor(self) -> int:
        """Where a catch-up starts: the cursor as it was CATCH_UP_LOOKBACK s before the
        newest event delivered (those since are fetched again and delivered only once)."""
        if not self._marks:
            return self.event_cursor or self._base
        cutoff = self._marks[-1][0] - CATCH_UP_LOOKBACK
        while len(self._marks) > 1 and self._marks[1][0] <= cutoff:
            self._base = self._marks.popleft()[1]
        if self._marks[0][0] <= cutoff:
            return self._marks[0][1]
        return self._base

    def _on_event(self, push: Push) -> None:
        self._deliver_event(push.data)

    def _deliver_event(self, data: dict[str, Any]) -> None:
        seq = data.get("seq")
        if isinstance(seq, int):
            # Once per event: by the device's id when it gave one (a device's repeat is
            # renumbered, so the same event may come under two seqs), else by its seq.
            key: object = (data.get("tid"), data["id"]) if data.get("id") else seq
            if key in self._seen_set:
                return  # pushed again, or pushed while it was also fetched
            self._seen.append(key)
            self._seen_set.add(key)
            if len(self._seen) > SEEN_EVENTS:
                self._seen_set.discard(self._seen.popleft())
            if seq > (self.event_cursor or 0):
                self.event_cursor = seq
                self._marks.append((time.monotonic(), seq))
                self._floor()  # drops marks older than the lookback needs
        message = DeviceMessage(
            "event",
            str(data.get("tid")),
            str(data.get("topic")),
            data.get("value"),
            int(data.get("t", 0)),
        )
        receive = getattr(self.delegate, "did_receive_event", None)
        if receive is not None:
            body = {"deviceId": message.device_id, "value": message.value, "t": message.t}
            receive(json.dumps(body), message.name)
        self._notify(message)

    def _notify(self, message: DeviceMessage) -> None:
        for listener in list(self._listeners):
            try:
                listener(message)
            except Exception:
                log.exception("message listener failed")

    # Thing model

    def read_property(
        self, device_id: str, path: str = "", *, completion: Completion | None = None
    ) -> asyncio.Task[Any]:
        """The value at ``path`` ("" is the whole model)."""
        return self._call(self._value("prop.read", {"tid": device_id, "path": path}), completion)

    def write_property(
        self, device_id: str, path: str, json_value: Any, *, completion: Completion | None = None
    ) -> asyncio.Task[Any]:
        """Set a ProWritable (``{"setVal": v}`` on the object, or ``v`` on ``.setVal``) or a
        ProUser value. Returns the object after the write."""
        data = {"tid": device_id, "path": path, "json": _json_text(json_value)}
        return self._call(self._value("prop.write", data), completion)

    def take_action(
        self,
        device_id: str,
        path: str,
        json_value: Any,
        *,
        timeout: float | None = None,
        completion: Completion | None = None,
    ) -> asyncio.Task[Any]:
        """Run an Action (``{"ctlVal": v}``); returns the device's answer."""
        data: dict[str, Any] = {"tid": device_id, "path": path, "json": _json_text(json_value)}
        if timeout is not None:
            data["timeout"] = timeout
        return self._call(self._value("action", data, timeout), completion)

    def add_property(
        self, device_id: str, path: str, json_value: Any, *, completion: Completion | None = None
    ) -> asyncio.Task[Any]:
        """Add a ProUser object (``ProUser.<name>``; names starting with ``_``: 8605)."""
        data = {"tid": device_id, "path": path, "json": _json_text(json_value)}
        return self._call(self._value("prop.add", data), completion)

    def delete_property(
        self, device_id: str, path: str, *, completion: Completion | None = None
    ) -> asyncio.Task[Any]:
        """Delete a ProUser object."""
        return self._call(self._value("prop.delete", {"tid": device_id, "path": path}), completion)

    # Passthrough data

    def send_data_to_device(
        self,
        device_id: str,
        data: bytes,
        *,
        expect_response: bool = False,
        timeout: float | None = None,
        completion: Completion | None = None,
    ) -> asyncio.Task[bytes | None]:
        """Pass data (at most MAX_DATA_SIZE bytes, else 21008) to the device through the
        cloud. With ``expect_response``, return the device's answer; else None on its ack."""

        async def send() -> bytes | None:
            _check_size(data)
            body: dict[str, Any] = {
                "tid": device_id,
                "data": link.encode_data(data),
                "reply": expect_response,
            }
            if timeout is not None:
                body["timeout"] = timeout
            answer = await self._request("data", body, timeout)
            return link.decode_data(answer["data"]) if expect_response else None

        return self._call(send(), completion)

    def send_data_to_server(
        self,
        url: str,
        data: bytes | None = None,
        *,
        timeout: float | None = None,
        completion: Completion | None = None,
    ) -> asyncio.Task[bytes]:
        """Pass data to the vendor's server (its webhook); return the server's answer."""

        async def send() -> bytes:
            payload = data or b""
            _check_size(payload)
            body: dict[str, Any] = {"url": url, "data": link.encode_data(payload)}
            if timeout is not None:
                body["timeout"] = timeout
            answer = await self._request("server.data", body, timeout)
            return link.decode_data(answer.get("data", ""))

        return self._call(send(), completion)

    # Plumbing

    async def _request(
        self, op: str, data: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        # The cloud waits up to `timeout` for the device; give the reply a moment more.
        return await self._sdk.request(op, data, timeout=timeout + 2 if timeout else None)

    async def _value(self, op: str, data: dict[str, Any], timeout: float | None = None) -> Any:
        return (await self._request(op, data, timeout)).get("value")

    def _call(self, work: Coroutine[Any, Any, T], completion: Completion | None) -> asyncio.Task[T]:
        return call(work, completion, shape=_as_text)


def _as_text(result: Any) -> Any:
    """What the seed's message callbacks get: JSON text, or the bytes of passthrough data."""
    return result if isinstance(result, bytes) else json.dumps(result)


def _check_size(data: bytes) -> None:
    if len(data) > MAX_DATA_SIZE:
        raise IVError.of(
            ErrorCode.IVMessageError_ExceedsMaxLength,
            f"{len(data)} bytes; at most MAX_DATA_SIZE ({MAX_DATA_SIZE})",
        )


def _t(value: Any) -> int:
    return int(value.get("t", 0)) if isinstance(value, dict) else 0
