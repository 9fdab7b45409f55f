"""``IoTVideo``: set up, register, link status, logs (the seed's 第三步 SDK初始化)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from enum import IntEnum
from typing import Any, ClassVar, Protocol

from iotvideo.app.calls import Completion, operation
from iotvideo.app.status import LinkStatus, LinkStatusMachine
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.link import Backoff, Push, Request
from iotvideo.transport import EndpointState, LinkEndpoint, http_url

__all__ = ["IoTVideo", "IoTVideoDelegate", "LogLevel"]

log = logging.getLogger("iotvideo.app")


class IoTVideoDelegate(Protocol):
    """Receives the SDK's link status and its log lines (both optional to implement)."""

    def did_update_link_status(self, status: LinkStatus) -> None: ...

    def did_output_pretty_log_message(self, message: str) -> None: ...


class LogLevel(IntEnum):
    """The seed's log levels, mapped onto :mod:`logging`."""

    OFF = logging.CRITICAL + 10
    ERROR = logging.ERROR
    WARNING = logging.WARNING
    INFO = logging.INFO
    DEBUG = logging.DEBUG


#: The SDK instance the running code works for: set while an instance starts its tasks
#: (they inherit it), so that their log lines reach that instance's delegate only.
_current: ContextVar[weakref.ref[IoTVideo] | None] = ContextVar("iotvideo_sdk", default=None)


class _DelegateLogHandler(logging.Handler):
    """One per process, on the ``iotvideo`` logger: hands each record to the delegate of
    the instance it belongs to (its ``iotvideo_sdk`` attribute, else the context's), at
    that instance's level. Records of no instance (a cloud in the same process, say) go
    to no delegate."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        ref = getattr(record, "iotvideo_sdk", None) or _current.get()
        sdk = ref() if ref is not None else None
        if sdk is None or record.levelno < sdk.log_level:
            return
        output = getattr(sdk.delegate, "did_output_pretty_log_message", None)
        if output is not None:
            output(self.format(record))


_handler: _DelegateLogHandler | None = None


def _install_handler() -> None:
    """Make sure the one delegate handler is on the package logger (something else in the
    process, a cloud's logging setup say, may have replaced its handlers)."""
    global _handler
    if _handler is None:
        _handler = _DelegateLogHandler()
    package = logging.getLogger("iotvideo")
    if _handler not in package.handlers:
        package.addHandler(_handler)


class IoTVideo:
    """The SDK's entry point: one link to the cloud, shared by every module.

    ::

        sdk = IoTVideo()
        sdk.setup("http://cloud.example:8080")
        sdk.delegate = my_delegate
        await sdk.register(access_id, access_token)
        temperature = await sdk.message.read_property(device_id, "ProReadonly.temperature")
    """

    _shared: ClassVar[IoTVideo | None] = None
    _latest: ClassVar[weakref.ref[IoTVideo] | None] = None

    def __init__(self) -> None:
        from iotvideo.app.devicemgr import DeviceMgr
        from iotvideo.app.messages import MessageMgr
        from iotvideo.app.netconfig import NetConfig
        from iotvideo.app.vas import VAS

        self.delegate: IoTVideoDelegate | Any = None
        self.access_id = ""
        self.access_token = ""
        self._status = LinkStatusMachine()
        self._urls: list[str] = []
        self._options: dict[str, Any] = {}
        self._endpoint: LinkEndpoint | None = None
        self._status_listeners: list[Callable[[LinkStatus], object]] = []
        self._login_hooks: list[Callable[[], Any]] = []
        self._push_handlers: dict[str, list[Callable[[Push], object]]] = {}
        #: Open media/data connections (at most MAX_CONNECTION_NUM).
        self.connections: set[Any] = set()
        self.login_reply: dict[str, Any] = {}
        self._log_level = LogLevel.WARNING
        self._log_extra = {"iotvideo_sdk": weakref.ref(self)}
        _install_handler()
        self.message = MessageMgr(self)
        self.net_config = NetConfig(self)
        self.device_mgr = DeviceMgr(self)
        self.vas = VAS(self)

    @classmethod
    def shared(cls) -> IoTVideo:
        """The process-wide instance (the seed's ``IoTVideo.sharedInstance``)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    @classmethod
    def default(cls) -> IoTVideo:
        """The instance a player or a list call made without ``sdk=`` uses: the one
        registered most recently and still registered (``IoTVideo()`` as the README makes
        it), else :meth:`shared`."""
        latest = cls._latest() if cls._latest is not None else None
        return latest if latest is not None and latest._endpoint is not None else cls.shared()

    def setup(
        self,
        cloud: str | list[str],
        *,
        ping_interval: float = 30.0,
        request_timeout: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        """Say where the cloud is: one URL, or several to fail over between."""
        self._urls = [cloud] if isinstance(cloud, str) else list(cloud)
        self._options = {
            "ping_interval": ping_interval,
            "request_timeout": request_timeout,
            "backoff": backoff,
        }

    @property
    def cloud_url(self) -> str:
        """The HTTP base URL of the cloud (the first one given to setup)."""
        if not self._urls:
            raise IVError.of(ErrorCode.IVConnError_NotAvailableNow, "call setup(cloud_url) first")
        return http_url(self._urls[0])

    @property
    def log_level(self) -> LogLevel:
        """What this instance's delegate receives (the seed's ``logLevel``)."""
        return self._log_level

    @log_level.setter
    def log_level(self, level: LogLevel) -> None:
        # Records below the package logger's level are never made: lower it when this
        # instance wants more (never raise it: other instances and the application may
        # want those records). Each delegate still gets only its own instance's lines.
        self._log_level = LogLevel(level)
        _install_handler()
        package = logging.getLogger("iotvideo")
        if level < package.getEffectiveLevel():
            package.setLevel(level)

    @property
    def link_status(self) -> LinkStatus:
        return self._status.status

    @property
    def last_error(self) -> IVError | None:
        return self._endpoint.last_error if self._endpoint else None

    @operation()
    async def register(
        self,
        access_id: str,
        access_token: str,
        *,
        wait: bool = True,
        timeout: float = 30.0,
        fail_fast: bool = False,
        completion: Completion | None = None,
    ) -> None:
        """Log in with the AccessId and AccessToken from the vendor's cloud.

        With ``wait`` (the default) return once online, or raise the refusal (20010 for a
        bad token) or 21022 after ``timeout`` naming the URL and why it failed; otherwise
        watch :attr:`link_status`. ``fail_fast``: raise 21022 as soon as no cloud URL could
        be reached once (scripts), instead of retrying until ``timeout``.
        """
        self.access_id = access_id
        self.access_token = access_token
        await self._start_link(
            {"access_id": access_id, "access_token": access_token},
            name=f"app {access_id}",
            wait=wait,
            timeout=timeout,
            fail_fast=fail_fast,
        )

    @operation()
    async def register_stream_ticket(
        self,
        ticket: str,
        *,
        timeout: float = 30.0,
        fail_fast: bool = True,
        completion: Completion | None = None,
    ) -> None:
        """Log in with the ticket of a DescribeStream URI (what a restream server does):
        the session may watch that one device channel's live video, and nothing else.
        Refused (20010) when the ticket is forged, altered or expired, 8003 when the
        device's streaming was disabled or the relation is gone."""
        await self._start_link(
            {"stream_ticket": ticket},
            name="stream ticket",
            wait=True,
            timeout=timeout,
            fail_fast=fail_fast,
        )

    async def _start_link(
        self, login: dict[str, str], *, name: str, wait: bool, timeout: float, fail_fast: bool
    ) -> None:
        if not self._urls:
            raise IVError.of(ErrorCode.IVConnError_NotAvailableNow, "call setup(cloud_url) first")
        await self.unregister()
        self._endpoint = LinkEndpoint(
            self._urls,
            "/link/app",
            login=lambda _nonce: login,
            on_login=self._on_login,
            on_request=self._on_request,
            on_push=self._on_push,
            on_state=self._on_state,
            stop_on_refusal=True,
            name=name,
            **{k: v for k, v in self._options.items() if v is not None},
        )
        token = _current.set(weakref.ref(self))
        try:
            await self._endpoint.start()  # its tasks log for this instance
        finally:
            _current.reset(token)
        IoTVideo._latest = weakref.ref(self)
        if wait:
            await self._endpoint.wait_online(timeout, fail_fast=fail_fast)

    @operation()
    async def unregister(self, *, completion: Completion | None = None) -> None:
        """Log out; the SDK is unusable until the next register()."""
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            await endpoint.stop()
        self._set_status(LinkStatus.UNREGISTERED)

    async def drop_connection(self) -> None:
        """Close the link as a network failure would (tests, demos); it comes back."""
        if self._endpoint is not None:
            await self._endpoint.drop()

    async def request(
        self, op: str, data: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """One request over the link (the modules build on this)."""
        if self._endpoint is None:
            raise IVError.of(ErrorCode.IVConnError_NotAvailableNow, "register() first")
        return await self._endpoint.request(op, data, timeout=timeout)

    # Wiring for the modules

    def add_status_listener(self, listener: Callable[[LinkStatus], object]) -> None:
        self._status_listeners.append(listener)

    def add_login_hook(self, hook: Callable[[], Any]) -> None:
        """Run ``hook`` (maybe a coroutine function) after every login, e.g. to resubscribe."""
        self._login_hooks.append(hook)

    def add_push_handler(self, op: str, handler: Callable[[Push], object]) -> None:
        self._push_handlers.setdefault(op, []).append(handler)

    def _set_status(self, status: LinkStatus) -> None:
        if not self._status.move(status):
            return
        log.info("link status: %s", status.value, extra=self._log_extra)
        update = getattr(self.delegate, "did_update_link_status", None)
        if update is not None:
            update(status)
        for listener in list(self._status_listeners):
            listener(status)

    def _on_state(self, state: EndpointState, error: IVError | None) -> None:
        status = {
            EndpointState.CONNECTING: LinkStatus.CONNECTING,
            EndpointState.ONLINE: LinkStatus.ONLINE,
            EndpointState.OFFLINE: LinkStatus.OFFLINE,
            EndpointState.REFUSED: LinkStatus.TOKEN_FAILED,
            EndpointState.STOPPED: LinkStatus.UNREGISTERED,
        }[state]
        if self._status.can(status):
            self._set_status(status)

    async def _on_login(self, reply: dict[str, Any]) -> None:
        #: The cloud's answer to the latest login (its ``event_seq``, ``devices``...).
        self.login_reply = reply
        for hook in list(self._login_hooks):
            result = hook()
            if asyncio.iscoroutine(result):
                await result

    async def _on_request(self, request: Request) -> dict[str, Any]:
        raise IVError.of(
            ErrorCode.IVTermErr_msg_user_cmd_type_error, f"apps take no {request.op!r}"
        )

    def _on_push(self, push: Push) -> None:
        for handler in self._push_handlers.get(push.op, ()):
            try:
                handler(push)
            except Exception:  # a user callback failing must not break the link
                log.exception("handler for %s failed", push.op)
