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
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from iotvideo.device.events import EventQueue
from iotvideo.device.runlog import RunLog
from iotvideo.protocol import link
from iotvideo.protocol.certificate import DeviceCertificate
from iotvideo.protocol.errors import ConnError, ErrorCode, IVError
from iotvideo.protocol.link import Backoff, Push, Request
from iotvideo.protocol.states import StateMachine
from iotvideo.transport import EndpointState, LinkEndpoint, RetrySoon

__all__ = ["DeviceClient", "DeviceStatus", "VersionInfo"]

#: Refusals of an event or a report itself (a path or value the product's model does not
#: take): sending it again cannot help. Any other failure (no answer in time, the cloud
#: busy or its database away, the link gone) keeps it queued and sends it again.
REFUSED_FOR_GOOD = (
    ErrorCode.IVTermErr_msg_gdm_handle_leaf_path_error,
    ErrorCode.IVTermErr_msg_gdm_handle_parse_json_fail,
    ErrorCode.IVTermErr_msg_user_cmd_type_error,
    ErrorCode.IVTermErr_msg_user_cmd_param_error,
)

log = logging.getLogger("iotvideo.device")

F = TypeVar("F", bound=Callable[..., Any])
MAX_QUEUED_EVENTS = 1000


class DeviceStatus(Enum):
    OFFLINE = "offline"
    CONNECTING = "connecting"
    ONLINE = "online"
    STOPPED = "stopped"


#: Where the device's link may go from each status (the one table; anything else raises
#: IllegalTransition). A stopped client may be started again.
DEVICE_MOVES: dict[DeviceStatus, frozenset[DeviceStatus]] = {
    DeviceStatus.OFFLINE: frozenset(
        {DeviceStatus.CONNECTING, DeviceStatus.ONLINE, DeviceStatus.STOPPED}
    ),
    DeviceStatus.CONNECTING: frozenset(
        {DeviceStatus.ONLINE, DeviceStatus.OFFLINE, DeviceStatus.STOPPED}
    ),
    DeviceStatus.ONLINE: frozenset(
        {DeviceStatus.OFFLINE, DeviceStatus.CONNECTING, DeviceStatus.STOPPED}
    ),
    DeviceStatus.STOPPED: frozenset({DeviceStatus.CONNECTING, DeviceStatus.OFFLINE}),
}

#: How the link endpoint's states read as the device's (the one mapping).
_STATUS = {
    EndpointState.CONNECTING: DeviceStatus.CONNECTING,
    EndpointState.ONLINE: DeviceStatus.ONLINE,
    EndpointState.OFFLINE: DeviceStatus.OFFLINE,
    EndpointState.REFUSED: DeviceStatus.OFFLINE,
    EndpointState.STOPPED: DeviceStatus.STOPPED,
}


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
    """What could not be sent while offline: the latest state per path."""

    state: dict[str, _Stamped] = field(default_factory=dict)


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
        bind_token: str | None = None,
        event_dir: Path | None = None,
        max_queued_events: int = MAX_QUEUED_EVENTS,
    ) -> None:
        """``event_dir``: where events not yet acknowledged by the cloud are kept, so that
        they survive a restart (default: in memory); at most ``max_queued_events``."""
        self.certificate = (
            certificate
            if isinstance(certificate, DeviceCertificate)
            else DeviceCertificate.parse(certificate)
        )
        self.tid = self.certificate.tid
        #: The cloud's base URLs (HTTP), for the device's uploads.
        self.cloud_urls = [cloud] if isinstance(cloud, str) else list(cloud)
        self.version = version or VersionInfo()
        self.on_status = on_status
        #: The ProWritable values in effect (applied by handlers or accepted as they are).
        self.writable: dict[str, Any] = {}
        #: Clear while a login's ProWritable values (read by the cloud before the login
        #: ended) are applied and reported: a write the cloud sends after the login reply
        #: waits for it, so the older values never undo it.
        self._restored = asyncio.Event()
        self._restored.set()
        self._status = StateMachine("device link", DEVICE_MOVES, DeviceStatus.OFFLINE)
        #: Whether the device has no owner (the cloud says so at login and on changes).
        self.bindable = True
        #: Called with the new ``bindable`` whenever it changes.
        self.on_bindable: Callable[[bool], None] | None = None
        #: Presented at the next login (provisioning), then forgotten.
        self.bind_token = bind_token
        self._writes: dict[str, Callable[[Any], Any]] = {"_logLevel": self._set_log_level}
        self._actions: dict[str, Callable[[Any], Any]] = {}
        self._reads: dict[str, Callable[[], Any]] = {}
        self._data: Callable[[bytes, str], Any] | None = None
        self._ops: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self._pushes: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self._push_tasks: set[asyncio.Task[Any]] = set()
        self._outbox = _Outbox()
        #: Events raised and not yet acknowledged by the cloud (sent at least once).
        self.events = EventQueue(event_dir, limit=max_queued_events)
        self._events_sent = asyncio.Event()
        self._retry = RetrySoon(self._resend, lambda: self.link.online)
        self._sending = asyncio.Lock()
        self._flushes: set[asyncio.Task[None]] = set()
        #: The device's own log lines, uploaded while the vendor traces it.
        self.run_log = RunLog(self)
        self.link = LinkEndpoint(
            [cloud] if isinstance(cloud, str) else list(cloud),
            "/link/device",
            login=self._login_data,
            on_login=self._on_login,
            on_request=self._dispatch,
            on_push=self._on_push,
            on_state=self._on_state,
            stop_on_refusal=False,  # a disabled device comes back when it is enabled again
            backoff=backoff,
            ping_interval=ping_interval,
            request_timeout=request_timeout,
            name=f"device {self.tid}",
        )

    def now(self) -> float:
        """The time (UNIX seconds) by the cloud's clock: this machine's, set right at each
        login when it is more than a second off (a camera with no battery-backed clock
        boots with the wrong time). Logins, reports, events and uploads use it."""
        return self.link.now()

    @property
    def logins(self) -> int:
        return self.link.logins

    @property
    def last_error(self) -> IVError | None:
        return self.link.last_error

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

    def add_op(self, op: str, handler: Callable[[dict[str, Any]], Any]) -> None:
        """Serve requests ``op`` from the cloud with ``handler(data) -> reply data`` (the
        device's media and other modules plug in here)."""
        self._ops[op] = handler

    def add_push(self, op: str, handler: Callable[[dict[str, Any]], Any]) -> None:
        """Handle pushes ``op`` from the cloud (no answer): ``handler(data)``, plain or
        ``async`` (run as a task)."""
        self._pushes[op] = handler

    # Lifecycle

    async def start(self, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Connect in the background; with ``wait``, return once logged in."""
        await self.link.start()
        if wait:
            await self.wait_online(timeout)

    async def wait_online(self, timeout: float = 30.0) -> None:
        await self.link.wait_online(timeout)

    async def stop(self) -> None:
        """Log out and stop reconnecting."""
        await self.run_log.close_async()
        await self.link.stop()

    async def drop_connection(self) -> None:
        """Close the current connection as a network failure would (tests, demos)."""
        await self.link.drop()

    # Reporting

    async def report(self, path: str, value: Any) -> None:
        """Report a state value: ``ProReadonly.x``, ``ProConst.x``, or a ProWritable's stVal.

        While offline the latest value per path is kept and sent after the next login.
        """
        stamped = _Stamped(value, int(self.now()))
        self._outbox.state[path] = stamped
        if self.link.online:
            await self.link.request("report", {"path": path, "value": value})
            stamped.sent = True

    async def event(self, name: str, value: Any = None) -> None:
        """Raise ``Event.<name>``. It is queued until the cloud acknowledges it (sent now
        when online, else after the next login; at least once: the cloud drops a repeat by
        its id). Raises only when the cloud refuses it for good (e.g. 20101: not in the
        product's model), and then forgets it."""
        self.events.add(name, value, int(self.now()))
        if self.link.online:
            try:
                await self._send_events()
            except ConnError as exc:  # the link went away mid-send: resent after login
                log.info("device %s: event queued until the link is back: %s", self.tid, exc)

    async def present_bind_token(self, token: str) -> None:
        """Hand the cloud a bind token received while already online (wired provisioning)."""
        await self.link.request("bind.present", {"bind_token": token})

    def _on_push(self, push: Push) -> None:
        if push.op == "owner":
            self._set_bindable(bool(push.data.get("bindable")))
        elif push.op == "trace":
            self.run_log.set_active(bool(push.data.get("on")))
        handler = self._pushes.get(push.op)
        if handler is None:
            return
        try:
            result = handler(push.data)
        except Exception:
            log.exception("device %s: handling push %s failed", self.tid, push.op)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._push_tasks.add(task)
            task.add_done_callback(self._push_tasks.discard)

    def _set_bindable(self, bindable: bool) -> None:
        changed = bindable != self.bindable
        self.bindable = bindable
        if changed and self.on_bindable is not None:
            self.on_bindable(bindable)

    async def set_sleeping(self, asleep: bool) -> None:
        """``ProReadonly._online``: 2 while asleep (still reachable), 1 when awake."""
        await self.link.request("status", {"online": 2 if asleep else 1})

    # The link's callbacks

    def _on_state(self, state: EndpointState, error: IVError | None) -> None:
        if state is EndpointState.ONLINE and self._unsent():
            # Events queued while offline, and what was reported while the login was
            # restoring state: sent now, in the background.
            task = asyncio.create_task(self._flush_quietly())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
        status = _STATUS[state]
        changed = self._status.move(status)
        if changed and self.on_status is not None:
            self.on_status(status, error)

    def _login_data(self, nonce: str) -> dict[str, Any]:
        now = int(self.now())
        try:
            signature = link.sign_login(self.certificate.private_key, self.tid, nonce, now)
        except ValueError:  # a server that is not our cloud, asking us to sign something
            raise IVError.of(
                ErrorCode.IVTermErr_msg_access_lib_not_init, "the cloud sent a malformed nonce"
            ) from None
        data = {"tid": self.tid, "ts": now, "sig": signature, "version": self.version.__dict__}
        if self.bind_token:
            data["bind_token"] = self.bind_token
        return data

    async def _on_login(self, reply: dict[str, Any]) -> None:
        log.info("device %s online", self.tid)
        self.bind_token = None  # presented
        self._set_bindable(bool(reply.get("bindable", True)))
        self.run_log.set_active(bool(reply.get("trace")))
        # Cleared at once (in this step, before any request that came after the reply
        # runs) until the restored values are reported: a newer write from the cloud is
        # applied, and its value recorded, after them.
        self._restored.clear()
        try:
            await self._apply_writable(reply.get("writable") or {}, reply.get("confirmed") or {})
            await self._flush_reports()
        finally:
            self._restored.set()
        # Queued events go once online (_on_state), not here: a device raising events as
        # fast as a busy cloud acknowledges them would never finish its login.

    async def _apply_writable(self, wanted: dict[str, Any], confirmed: dict[str, Any]) -> None:
        """Apply the ProWritable values kept in the cloud (writes made while offline too);
        a value applied already is reported again when the cloud's confirmed one differs
        (its record was lost: the instance that was recording it died)."""
        for name, value in wanted.items():
            held = name in self.writable and self.writable[name] == value
            if held and confirmed.get(name, value) == value:
                continue
            try:
                applied = value if held else await self._apply_write(name, value)
                await self.report(f"ProWritable.{name}", applied)
            except IVError as exc:
                log.warning(
                    "device %s: cannot apply ProWritable.%s=%r: %s", self.tid, name, value, exc
                )

    def _unsent(self) -> bool:
        return bool(self.events) or any(not s.sent for s in self._outbox.state.values())

    async def _flush_quietly(self) -> None:
        try:
            await self._flush_outbox()
        except IVError as exc:
            log.info("device %s: could not send queued state: %s", self.tid, exc)
            self._retry_events_soon()

    async def _flush_outbox(self) -> bool:
        """Send the reports and then the events not yet acknowledged; whether all were."""
        await self._flush_reports()
        return await self._send_events()

    async def _flush_reports(self) -> None:
        """Send the latest value of each path reported while it could not be sent."""
        for path, stamped in list(self._outbox.state.items()):
            if not stamped.sent:
                try:
                    await self.link.request("report", {"path": path, "value": stamped.value})
                except IVError as exc:
                    if isinstance(exc, ConnError) or exc.code not in REFUSED_FOR_GOOD:
                        raise
                    log.warning("device %s: the cloud refused %s: %s", self.tid, path, exc)
                stamped.sent = True

    async def _send_events(self) -> bool:
        """Send queued events oldest first; each leaves the queue once acknowledged (a
        connection error leaves it for the next login). One sender at a time. Whether
        all were acknowledged (False: a retry is asked)."""
        async with self._sending:
            while (event := self.events.oldest()) is not None:
                data = {"path": f"Event.{event.name}", "value": event.value, "id": event.id}
                try:
                    await self.link.request("event", data)
                except ConnError:
                    raise
                except IVError as exc:
                    if exc.code in REFUSED_FOR_GOOD:
                        self.events.done(event)  # sending it again cannot help
                        raise
                    # Busy, its database away, no answer in time: kept and sent again.
                    log.info("device %s: event kept, sent again shortly: %s", self.tid, exc)
                    self._retry_events_soon()
                    return False
                self.events.done(event)
            self._events_sent.set()
            return True

    def _retry_events_soon(self) -> None:
        """Send what is queued (reports, events) again in a moment, backing off from 1 to
        10 s, until it is all acknowledged; offline, the next login sends it."""
        self._retry.ask()

    async def _resend(self) -> bool:
        """Whether everything queued went out (False: tried again later)."""
        try:
            return await self._flush_outbox()
        except IVError:
            return False

    @property
    def status(self) -> DeviceStatus:
        """Where the device's link stands (moves only along DEVICE_MOVES)."""
        return self._status.state

    async def events_sent(self, timeout: float | None = None) -> None:
        """Wait until every queued event is acknowledged by the cloud (after a reconnect
        too); TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while len(self.events):
                self._events_sent.clear()
                await self._events_sent.wait()

    # Requests from the cloud

    async def _dispatch(self, request: Request) -> dict[str, Any]:
        op, data = request.op, request.data
        if op == "prop.write":
            name = _name(data, "ProWritable")
            await self._restored.wait()
            applied = await self._apply_write(name, data.get("value"))
            self._outbox.state[f"ProWritable.{name}"] = _Stamped(
                applied, int(self.now()), sent=True
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
        if op in self._ops:
            return dict(await _call(self._ops[op], data))
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
            return {"value": self._reads[name](), "t": int(self.now())}
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
