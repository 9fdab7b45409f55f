"""The device SDK: a camera's link to the cloud.

::

    device = DeviceClient(certificate, ["ws://cloud.example:8080"])

    @device.on_write("nightMode")
    async def night_mode(value):        # a ProWritable the app or the vendor changed
        await camera.set_night_mode(value)
        return value                     # the value now in effect (stVal)

    @device.on_action("cameraOn")
    def camera_on(value):                # an Action; the return value goes to the app
        return {"ok": True}

    await device.start()                 # logs in, and keeps logging in after outages
    await device.report("ProReadonly.temperature", 21.5)
    await device.event("motion", {"zone": 2})

Handlers may be plain or ``async`` functions. A handler raising :class:`IVError` answers
with its code; any other exception answers 20103. The client reconnects by itself with
exponential backoff and jitter, trying each cloud URL in turn, and re-sends the latest
state it could not send while offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection

from iotvideo.protocol import link
from iotvideo.protocol.certificate import DeviceCertificate
from iotvideo.protocol.errors import ConnError, ErrorCode, IVError
from iotvideo.protocol.link import Backoff, FrameError, Push, Reply, Request

__all__ = ["DeviceClient", "DeviceStatus", "VersionInfo"]

log = logging.getLogger("iotvideo.device")

F = TypeVar("F", bound=Callable[..., Any])
#: Login refusals after which reconnecting makes no sense until something changes.
_FATAL = {ErrorCode.IVASrvErr_dst_notexsit, ErrorCode.IVTermErr_msg_calling_check_token_error}
MAX_QUEUED_EVENTS = 100


class DeviceStatus(Enum):
    OFFLINE = "offline"
    CONNECTING = "connecting"
    ONLINE = "online"
    STOPPED = "stopped"


@dataclass(frozen=True)
class VersionInfo:
    """``ProConst._versionInfo``: reported at every login."""

    sdkVer: str = "iotvideo-py-0.1"  # the seed's field names
    swVer: str = "1.0.0"
    hwVer: str = "sim"


@dataclass
class _Stamped:
    value: Any
    t: int
    sent: bool = False


@dataclass
class _Outbox:
    """What could not be sent while offline: the latest state per path, and events."""

    state: dict[str, _Stamped] = field(default_factory=dict)
    events: list[tuple[str, Any]] = field(default_factory=list)


def _ws_url(base: str) -> str:
    base = base.rstrip("/")
    if base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    elif base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    return base + "/link/device"


async def _call(handler: Callable[..., Any], *args: Any) -> Any:
    result = handler(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class DeviceClient:
    """One device's link session, kept up until :meth:`stop`."""

    def __init__(
        self,
        certificate: str | DeviceCertificate,
        cloud: str | list[str],
        *,
        version: VersionInfo | None = None,
        ping_interval: float = 30.0,
        request_timeout: float = 10.0,
        backoff: Backoff | None = None,
        on_status: Callable[[DeviceStatus, IVError | None], None] | None = None,
    ) -> None:
        self.certificate = (
            certificate
            if isinstance(certificate, DeviceCertificate)
            else DeviceCertificate.parse(certificate)
        )
        self.tid = self.certificate.tid
        self.urls = [cloud] if isinstance(cloud, str) else list(cloud)
        if not self.urls:
            raise ValueError("give at least one cloud URL")
        self.version = version or VersionInfo()
        self.ping_interval = ping_interval
        self.request_timeout = request_timeout
        self.backoff = backoff or Backoff()
        self.on_status = on_status
        #: The ProWritable values in effect (applied by handlers or accepted as they are).
        self.writable: dict[str, Any] = {}
        self.status = DeviceStatus.OFFLINE
        self.last_error: IVError | None = None
        self.logins = 0
        self._writes: dict[str, Callable[[Any], Any]] = {"_logLevel": self._set_log_level}
        self._actions: dict[str, Callable[[Any], Any]] = {}
        self._reads: dict[str, Callable[[], Any]] = {}
        self._data: Callable[[bytes, str], Any] | None = None
        self._outbox = _Outbox()
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._online = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # Handlers

    def on_write(self, name: str) -> Callable[[F], F]:
        """Handle writes of ``ProWritable.<name>``: ``fn(value) -> applied value (or None)``."""

        def register(fn: F) -> F:
            self._writes[name] = fn
            return fn

        return register

    def on_action(self, name: str) -> Callable[[F], F]:
        """Handle ``Action.<name>``: ``fn(ctlVal) -> result`` (any JSON value for the app)."""

        def register(fn: F) -> F:
            self._actions[name] = fn
            return fn

        return register

    def on_read(self, name: str) -> Callable[[F], F]:
        """Answer live reads of ``ProReadonly.<name>``: ``fn() -> value``.

        Without one, reads get the last value reported with :meth:`report`.
        """

        def register(fn: F) -> F:
            self._reads[name] = fn
            return fn

        return register

    def on_data(self, fn: Callable[[bytes, str], Any]) -> Callable[[bytes, str], Any]:
        """Handle passthrough data: ``fn(data, topic) -> bytes`` (the answer) or None."""
        self._data = fn
        return fn

    # Lifecycle

    async def start(self, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Connect in the background; with ``wait``, return once logged in."""
        if self._runner is None:
            self._stopping = False
            self._runner = asyncio.create_task(self._run(), name=f"device-{self.tid}")
        if wait:
            await self.wait_online(timeout)

    async def wait_online(self, timeout: float = 30.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._online.wait()
        except TimeoutError:
            raise IVError.of(
                ErrorCode.IVConnError_ConnectFailed,
                f"not logged in after {timeout:g} s"
                + (f": {self.last_error}" if self.last_error else ""),
            ) from None

    async def stop(self) -> None:
        """Log out and stop reconnecting."""
        self._stopping = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for task in list(self._tasks):
            task.cancel()
        self._set_status(DeviceStatus.STOPPED)

    async def drop_connection(self) -> None:
        """Close the current connection as a network failure would (tests, demos)."""
        if self._ws is not None:
            await self._ws.close()

    # Reporting

    async def report(self, path: str, value: Any) -> None:
        """Report a state value: ``ProReadonly.x``, ``ProConst.x``, or a ProWritable's stVal.

        While offline the latest value per path is kept and sent after the next login.
        """
        stamped = _Stamped(value, int(time.time()))
        self._outbox.state[path] = stamped
        if self.status is DeviceStatus.ONLINE:
            await self._request("report", {"path": path, "value": value})
            stamped.sent = True

    async def event(self, name: str, value: Any = None) -> None:
        """Raise ``Event.<name>``; kept (up to 100) and sent after login while offline."""
        if self.status is DeviceStatus.ONLINE:
            await self._request("event", {"path": f"Event.{name}", "value": value})
            return
        self._outbox.events = [*self._outbox.events, (name, value)][-MAX_QUEUED_EVENTS:]

    async def set_sleeping(self, asleep: bool) -> None:
        """``ProReadonly._online``: 2 while asleep (still reachable), 1 when awake."""
        await self._request("status", {"online": 2 if asleep else 1})

    # The connection

    def _set_status(self, status: DeviceStatus, error: IVError | None = None) -> None:
        if status is DeviceStatus.ONLINE:
            self._online.set()
        else:
            self._online.clear()
        changed = status is not self.status
        self.status = status
        if changed and self.on_status is not None:
            self.on_status(status, error)

    async def _run(self) -> None:
        urls = itertools.cycle(self.urls)
        while not self._stopping:
            url = next(urls)
            self._set_status(DeviceStatus.CONNECTING)
            try:
                async with websockets.connect(
                    _ws_url(url),
                    max_size=1 << 20,
                    open_timeout=10,
                    ping_interval=20,
                    ping_timeout=20,
                ) as ws:
                    self._ws = ws
                    await self._session(ws)
            except IVError as exc:
                self.last_error = exc
                log.warning("device %s: login refused: %s", self.tid, exc)
            except (
                OSError,
                TimeoutError,
                websockets.ConnectionClosed,
                websockets.InvalidHandshake,
            ) as exc:
                log.info("device %s: link to %s lost: %s", self.tid, url, exc)
            finally:
                self._ws = None
                self._fail_pending()
            if self._stopping:
                break
            self._set_status(DeviceStatus.OFFLINE, self.last_error)
            delay = self.backoff.next()
            if self.last_error is not None and self.last_error.code in _FATAL:
                delay = self.backoff.cap  # wrong identity: no point in hurrying
            await asyncio.sleep(delay)

    async def _session(self, ws: ClientConnection) -> None:
        hello = link.parse_frame(await asyncio.wait_for(ws.recv(), 10))
        if not isinstance(hello, Push) or hello.op != "hello":
            raise IVError.of(
                ErrorCode.IVTermErr_msg_access_lib_not_init, "the cloud did not say hello"
            )
        reader = asyncio.create_task(self._read(ws))
        try:
            await self._login(str(hello.data.get("nonce", "")))
            await self._flush_outbox()
            await self._keepalive(reader)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _login(self, nonce: str) -> None:
        now = int(time.time())
        signature = link.sign_login(self.certificate.private_key, self.tid, nonce, now)
        data = {"tid": self.tid, "ts": now, "sig": signature, "version": self.version.__dict__}
        reply = await self._request("login", data, during_login=True)
        self.backoff.reset()
        self.last_error = None
        self.logins += 1
        self._set_status(DeviceStatus.ONLINE)
        log.info("device %s online", self.tid)
        await self._apply_writable(reply.get("writable") or {})

    async def _apply_writable(self, wanted: dict[str, Any]) -> None:
        """Apply the ProWritable values kept in the cloud (writes made while offline too)."""
        for name, value in wanted.items():
            if name in self.writable and self.writable[name] == value:
                continue
            try:
                applied = await self._apply_write(name, value)
                await self.report(f"ProWritable.{name}", applied)
            except IVError as exc:
                log.warning(
                    "device %s: could not apply ProWritable.%s=%r: %s", self.tid, name, value, exc
                )

    async def _flush_outbox(self) -> None:
        for path, stamped in list(self._outbox.state.items()):
            if not stamped.sent:
                await self._request("report", {"path": path, "value": stamped.value})
                stamped.sent = True
        events, self._outbox.events = self._outbox.events, []
        for name, value in events:
            await self._request("event", {"path": f"Event.{name}", "value": value})

    async def _keepalive(self, reader: asyncio.Task[None]) -> None:
        """Ping when idle; return when the reader ends (the connection closed)."""
        while not reader.done():
            done, _ = await asyncio.wait({reader}, timeout=self.ping_interval)
            if not done:
                await self._request("ping", {})
        reader.result()

    async def _read(self, ws: ClientConnection) -> None:
        async for message in ws:
            try:
                frame = link.parse_frame(message)
            except FrameError as exc:
                log.warning("device %s: bad frame from the cloud: %s", self.tid, exc)
                continue
            if isinstance(frame, Reply):
                future = self._pending.pop(frame.id, None)
                if future is not None and not future.done():
                    future.set_result(frame)
            elif isinstance(frame, Request):
                self._spawn(self._answer(ws, frame))
            elif frame.op == "bye":
                self.last_error = IVError.of(
                    int(frame.data.get("code", 0)), str(frame.data.get("msg", ""))
                )
                log.warning("device %s: the cloud ended the session: %s", self.tid, self.last_error)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _request(
        self, op: str, data: dict[str, Any], *, during_login: bool = False
    ) -> dict[str, Any]:
        ws = self._ws
        if ws is None or (self.status is not DeviceStatus.ONLINE and not during_login):
            raise ConnError(ErrorCode.IVConnError_NotAvailableNow, "the device is not online")
        request_id = next(self._ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await ws.send(Request(request_id, op, data).encode())
            async with asyncio.timeout(self.request_timeout):
                reply = await future
        except TimeoutError:
            raise IVError.of(ErrorCode.IVMessageError_timeout, f"no answer to {op}") from None
        finally:
            self._pending.pop(request_id, None)
        if not reply.ok:
            raise IVError.of(reply.code, reply.msg or None)
        return reply.data

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    ConnError(ErrorCode.IVConnError_Disconnected, "the link closed")
                )
        self._pending.clear()

    # Requests from the cloud

    async def _answer(self, ws: ClientConnection, request: Request) -> None:
        try:
            data = await self._dispatch(request)
            reply = Reply(request.id, 0, data)
        except IVError as exc:
            reply = Reply(request.id, int(exc.code), msg=exc.message)
        except Exception as exc:
            log.exception("device %s: handler for %s failed", self.tid, request.op)
            reply = Reply(
                request.id, ErrorCode.IVTermErr_msg_gdm_handle_fail, msg=type(exc).__name__
            )
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(reply.encode())

    async def _dispatch(self, request: Request) -> dict[str, Any]:
        op, data = request.op, request.data
        if op == "prop.write":
            name = _name(data, "ProWritable")
            applied = await self._apply_write(name, data.get("value"))
            self._outbox.state[f"ProWritable.{name}"] = _Stamped(
                applied, int(time.time()), sent=True
            )
            return {"value": applied}
        if op == "action":
            name = _name(data, "Action")
            handler = self._actions.get(name)
            if handler is None:
                raise IVError.of(
                    ErrorCode.IVTermErr_msg_gdm_handle_no_cb_registered,
                    f"no handler for Action.{name}",
                )
            return {"value": await _call(handler, data.get("value"))}
        if op == "prop.read":
            return self._read_value(_name(data, "ProReadonly"))
        if op == "data":
            return await self._pass_data(data)
        raise IVError.of(ErrorCode.IVTermErr_msg_user_cmd_type_error, f"unknown op {op!r}")

    async def _apply_write(self, name: str, value: Any) -> Any:
        handler = self._writes.get(name)
        applied = await _call(handler, value) if handler is not None else None
        if applied is None:
            applied = value
        self.writable[name] = applied
        return applied

    def _read_value(self, name: str) -> dict[str, Any]:
        if name in self._reads:
            return {"value": self._reads[name](), "t": int(time.time())}
        stamped = self._outbox.state.get(f"ProReadonly.{name}")
        if stamped is None:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_gdm_handle_leaf_path_error,
                f"ProReadonly.{name} not reported",
            )
        return {"value": stamped.value, "t": stamped.t}

    async def _pass_data(self, data: dict[str, Any]) -> dict[str, Any]:
        if self._data is None:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_gdm_handle_no_cb_registered, "no passthrough data handler"
            )
        try:
            payload = link.decode_data(data.get("data"))
        except ValueError:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_user_cmd_param_error, "data is not base64"
            ) from None
        answer = await _call(self._data, payload, str(data.get("topic", "")))
        if not data.get("reply"):
            return {}
        if isinstance(answer, str):
            answer = answer.encode()
        if not isinstance(answer, bytes):
            answer = json.dumps(answer).encode()
        return {"data": link.encode_data(answer)}

    def _set_log_level(self, level: Any) -> Any:
        """The built-in ProWritable._logLevel: 0 (fatal only) .. 5 (debug)."""
        levels = [
            logging.CRITICAL,
            logging.ERROR,
            logging.WARNING,
            logging.INFO,
            logging.INFO,
            logging.DEBUG,
        ]
        if isinstance(level, int) and 0 <= level < len(levels):
            logging.getLogger("iotvideo.device").setLevel(levels[level])
        return level


def _name(data: dict[str, Any], section: str) -> str:
    path = data.get("path")
    if not isinstance(path, str) or not path.startswith(section + "."):
        raise IVError.of(
            ErrorCode.IVTermErr_msg_gdm_handle_leaf_path_error, f"expected a {section} path"
        )
    return path.split(".", 1)[1]
