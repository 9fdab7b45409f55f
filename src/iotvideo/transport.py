"""The client end of a link WebSocket, shared by the device SDK and the app SDK.

:class:`LinkEndpoint` connects to one of several cloud URLs, waits for ``hello``, logs in
with data its owner builds from the cloud's nonce, then serves: requests from the cloud go
to ``on_request``, pushes to ``on_push``, replies resolve :meth:`request` calls. When the
connection drops it reconnects with exponential backoff and full jitter, trying the URLs in
turn, and logs in again (its owner re-subscribes in ``on_login``). It pings when idle.

This layer sits between :mod:`iotvideo.protocol` (wire formats, no I/O) and the two SDKs,
which must not import each other; it imports nothing else of iotvideo.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from iotvideo.protocol import link
from iotvideo.protocol.errors import ConnError, ErrorCode, IVError
from iotvideo.protocol.link import Backoff, FrameError, Push, Reply, Request
from iotvideo.protocol.rpc import DEVICE_FAILED, Outstanding, reply_to, result_of

__all__ = [
    "EndpointState",
    "LinkEndpoint",
    "RetrySoon",
    "describe_network_error",
    "http_url",
    "ws_url",
]

log = logging.getLogger("iotvideo.transport")


def describe_network_error(exc: BaseException) -> str:
    """Why a connection to a cloud failed, in words a user can act on: refused, DNS,
    TLS, timeout, or what the server answered. Looks through wrapped causes (httpx and
    websockets wrap the socket's error)."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen:
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    for error in seen:
        if isinstance(error, ConnectionRefusedError):
            return "connection refused (is the cloud running, on that host and port?)"
        if isinstance(error, socket.gaierror):
            return f"cannot resolve the host name ({error.strerror})"
        if isinstance(error, ssl.SSLCertVerificationError):
            return f"TLS: the certificate is not trusted ({error.verify_message})"
        if isinstance(error, ssl.SSLError):
            return f"TLS handshake failed ({error.reason or error})"
        if isinstance(error, TimeoutError) or type(error).__name__.endswith("Timeout"):
            return "timed out (a firewall, or a host that does not answer?)"
        if isinstance(error, websockets.InvalidStatus):
            return (
                f"the server answered HTTP {error.response.status_code}, not a link "
                "WebSocket (is this the iotvideo cloud's URL?)"
            )
        if isinstance(error, websockets.InvalidURI):
            return "not a valid URL (give http://HOST:PORT or https://HOST)"
        if isinstance(error, OSError) and error.strerror:
            return error.strerror.lower()
    return str(exc) or type(exc).__name__


class _Refused(Exception):
    """The cloud answered the login with an error."""

    def __init__(self, error: IVError) -> None:
        super().__init__(str(error))
        self.error = error


class EndpointState(Enum):
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"  # lost; will reconnect
    REFUSED = "refused"  # login refused; not reconnecting (with stop_on_refusal)
    STOPPED = "stopped"


def http_url(base: str) -> str:
    """A cloud URL (``ws(s)://`` or ``http(s)://``) as the HTTP base for its other APIs."""
    base = base.rstrip("/")
    for secure, plain in (("ws://", "http://"), ("wss://", "https://")):
        if base.startswith(secure):
            return plain + base[len(secure) :]
    return base


def ws_url(base: str, path: str) -> str:
    """``http(s)://host:port`` or ``ws(s)://host:port`` plus the link path."""
    base = base.rstrip("/")
    for plain, secure in (("http://", "ws://"), ("https://", "wss://")):
        if base.startswith(plain):
            base = secure + base[len(plain) :]
    return base + path


class LinkEndpoint:
    """One reconnecting link connection. Runs on the event loop of :meth:`start`."""

    def __init__(
        self,
        urls: list[str],
        path: str,
        *,
        login: Callable[[str], dict[str, Any]],
        on_login: Callable[[dict[str, Any]], Awaitable[None]],
        on_request: Callable[[Request], Awaitable[dict[str, Any]]],
        on_push: Callable[[Push], None],
        on_state: Callable[[EndpointState, IVError | None], None],
        stop_on_refusal: bool,
        backoff: Backoff | None = None,
        ping_interval: float = 30.0,
        request_timeout: float = 10.0,
        name: str = "link",
    ) -> None:
        if not urls:
            raise ValueError("give at least one cloud URL")
        self.urls = [ws_url(u, path) for u in urls]
        self._login = login
        self._on_login = on_login
        self._on_request = on_request
        self._on_push = on_push
        self._on_state = on_state
        self.stop_on_refusal = stop_on_refusal
        self.backoff = backoff or Backoff()
        self.ping_interval = ping_interval
        self.request_timeout = request_timeout
        self.name = name
        self.state = EndpointState.STOPPED
        self.last_error: IVError | None = None
        #: Why the last connection attempt failed before login: "URL: cause".
        self.last_connect_error: str | None = None
        self.logins = 0
        #: Seconds to add to this machine's clock to read the cloud's (0 while they agree
        #: within a second): from each ``hello``, and :meth:`set_cloud_time`.
        self.clock_offset = 0.0
        self._dialed = 0.0  # time.time() as the current connection was opened
        self._bye_refused = False
        self._in_login = False
        self._ws: ClientConnection | None = None
        self._pending: Outstanding[asyncio.Future[Reply]] = Outstanding()
        self._runner: asyncio.Task[None] | None = None
        self._online = asyncio.Event()
        self._settled = asyncio.Event()  # online, refused or a failed connect: wake waiters
        self._connect_failures = 0  # attempts in a row that did not reach a login
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def online(self) -> bool:
        return self.state is EndpointState.ONLINE

    def now(self) -> float:
        """The cloud's time as this machine reads it (UNIX seconds): its own clock, set
        right by the last reading of the cloud's. A camera without a battery-backed
        clock boots with the wrong time; logins, uploads and event times use this."""
        return time.time() + self.clock_offset

    def set_cloud_time(self, cloud_time: float, within: float = 0.0) -> None:
        """A reading of the cloud's clock (UNIX seconds) that arrived just now, taken at
        most ``within`` s ago (see :func:`iotvideo.protocol.link.clock_offset`)."""
        offset = link.clock_offset(cloud_time, time.time(), within)
        if offset and abs(offset - self.clock_offset) > link.CLOCK_TOLERANCE:
            log.warning(
                "%s: this clock is %+.1f s off the cloud's; using the cloud's time",
                self.name,
                -offset,
            )
        self.clock_offset = offset

    async def start(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name=self.name)

    async def wait_online(self, timeout: float, *, fail_fast: bool = False) -> None:
        """Return once logged in; raise the refusal, or 21022 after ``timeout`` naming the
        URL and the cause. With ``fail_fast``, raise 21022 as soon as every URL has failed
        to connect once, instead of retrying until ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while not self._online.is_set():
                    await self._settled.wait()
                    if self.state is EndpointState.REFUSED and self.last_error is not None:
                        raise self.last_error
                    if fail_fast and self._connect_failures >= len(self.urls):
                        raise IVError.of(
                            ErrorCode.IVConnError_ConnectFailed,
                            f"cannot reach {self.last_connect_error}",
                        )
                    self._settled.clear()
        except TimeoutError:
            cause = self.last_error or self.last_connect_error
            detail = f": {cause}" if cause else ""
            raise IVError.of(
                ErrorCode.IVConnError_ConnectFailed, f"not online after {timeout:g} s{detail}"
            ) from None

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        for task in list(self._tasks):
            task.cancel()
        self._set_state(EndpointState.STOPPED)

    async def drop(self) -> None:
        """Close the current connection as a network failure would; it reconnects."""
        if self._ws is not None:
            await self._ws.close()

    async def request(
        self, op: str, data: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a request and return the reply's data; raise its code as :class:`IVError`."""
        if not (self.online or self._in_login):
            raise ConnError(ErrorCode.IVConnError_NotAvailableNow, "not connected to the cloud")
        return await self._send_request(op, data, timeout)

    # The connection loop

    def _set_state(self, state: EndpointState, error: IVError | None = None) -> None:
        if state is EndpointState.ONLINE:
            self._online.set()
        else:
            self._online.clear()
        if state in (EndpointState.ONLINE, EndpointState.REFUSED):
            self._settled.set()
        if state is not self.state:
            self.state = state
            self._on_state(state, error)

    async def _run(self) -> None:
        index = 0
        while True:
            url = self.urls[index]
            logins = self.logins
            self._set_state(EndpointState.CONNECTING)
            refused = False
            self._dialed = time.time()
            try:
                async with websockets.connect(
                    url,
                    max_size=1 << 20,
                    open_timeout=10,
                    ping_interval=20,
                    ping_timeout=20,
                    compression=None,  # small JSON frames: not worth zlib's memory
                ) as ws:
                    self._ws = ws
                    await self._session(ws)
            except _Refused as exc:
                self.last_error, refused = exc.error, True
                log.warning("%s: login refused by %s: %s", self.name, url, exc.error)
            except (
                OSError,
                TimeoutError,
                IVError,  # the link closed under a request, or a malformed hello
                websockets.ConnectionClosed,
                websockets.InvalidHandshake,
                websockets.InvalidURI,
            ) as exc:
                if self._ws is None:  # the connection never opened
                    self._note_connect_failure(url, exc)
                log.info("%s: link to %s lost: %s", self.name, url, exc)
            finally:
                self._ws = None
                self._fail_pending()
            refused = refused or self._refused_by_bye()
            if refused and self.stop_on_refusal:
                self._set_state(EndpointState.REFUSED, self.last_error)
                return
            self._set_state(EndpointState.OFFLINE, self.last_error)
            index = self._next_url(index, lost=self.logins > logins)
            await asyncio.sleep(self.backoff.cap if refused else self.backoff.next())

    def _next_url(self, index: int, *, lost: bool) -> int:
        """The URL to try after ``urls[index]``: the next one; but after losing a link
        that was up, a random one of the others, so that the clients of an instance that
        died spread over the rest instead of all moving on to the same next one."""
        count = len(self.urls)
        if lost and count > 2:
            return (index + 1 + self.backoff.rng.randrange(count - 1)) % count
        return (index + 1) % count

    def _note_connect_failure(self, url: str, exc: BaseException) -> None:
        self._connect_failures += 1
        self.last_connect_error = f"{url}: {describe_network_error(exc)}"
        self._settled.set()

    def _refused_by_bye(self) -> bool:
        """The cloud ended the session for good (token revoked or expired, device disabled)."""
        return self.last_error is not None and self._bye_refused

    async def _session(self, ws: ClientConnection) -> None:
        self._bye_refused = False
        hello = link.parse_frame(await asyncio.wait_for(ws.recv(), 10))
        if not isinstance(hello, Push) or hello.op != "hello":
            raise IVError.of(
                ErrorCode.IVTermErr_msg_access_lib_not_init, "the cloud did not say hello"
            )
        cloud_ms = hello.data.get("time_ms")
        if isinstance(cloud_ms, int) and not isinstance(cloud_ms, bool):
            # Written after the cloud accepted the connection, which started at _dialed.
            self.set_cloud_time(cloud_ms / 1000, within=time.time() - self._dialed)
        reader = asyncio.create_task(self._read(ws))
        try:
            login = self._login(str(hello.data.get("nonce", "")))
            try:
                reply = await self._send_request("login", login, None)
            except ConnError:
                raise
            except IVError as exc:
                raise _Refused(exc) from None
            self.backoff.reset()
            self.last_error = None
            self._connect_failures = 0
            self.last_connect_error = None
            self.logins += 1
            # Online only once the owner restored its state (re-sent reports, renewed
            # subscriptions), so that what it does next sees a consistent link.
            self._in_login = True
            try:
                await self._on_login(reply)
            except IVError as exc:  # e.g. the link dropped while re-sending state
                log.warning("%s: after login: %s", self.name, exc)
            finally:
                self._in_login = False
            self._set_state(EndpointState.ONLINE)
            await self._keepalive(reader)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _keepalive(self, reader: asyncio.Task[None]) -> None:
        """Ping when idle; return when the reader ends (the connection closed)."""
        while not reader.done():
            done, _ = await asyncio.wait({reader}, timeout=self.ping_interval)
            if not done:
                with contextlib.suppress(IVError):
                    await self._send_request("ping", {}, None)
        reader.result()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            await self._read_frames(ws)
        finally:
            # Nothing more will be answered on this connection.
            self._fail_pending()

    async def _read_frames(self, ws: ClientConnection) -> None:
        async for message in ws:
            try:
                frame = link.parse_frame(message)
            except FrameError as exc:
                log.warning("%s: bad frame from the cloud: %s", self.name, exc)
                continue
            if isinstance(frame, Reply):
                future = self._pending.take(frame.id)
                if future is not None and not future.done():
                    future.set_result(frame)
            elif isinstance(frame, Request):
                self._spawn(self._answer(ws, frame))
            elif frame.op == "bye":
                self._bye(frame)
            else:
                self._on_push(frame)

    def _bye(self, frame: Push) -> None:
        code = int(frame.data.get("code", 0))
        self.last_error = IVError.of(code, str(frame.data.get("msg", "")) or None)
        self._bye_refused = code in (
            ErrorCode.IVTermErr_msg_calling_check_token_error,
            ErrorCode.IVTermErr_msg_calling_dev_is_disable,
            ErrorCode.IVASrvErr_dst_notexsit,
        )
        log.warning("%s: the cloud ended the session: %s", self.name, self.last_error)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, ws: ClientConnection, request: Request) -> None:
        try:
            outcome: Any = await self._on_request(request)
        except IVError as exc:
            outcome = exc
        except Exception as exc:
            log.exception("%s: handling %s failed", self.name, request.op)
            outcome = exc
        reply = reply_to(request.id, outcome, fallback=DEVICE_FAILED)
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(reply.encode())

    async def _send_request(
        self, op: str, data: dict[str, Any], timeout: float | None
    ) -> dict[str, Any]:
        ws = self._ws
        if ws is None:
            raise ConnError(ErrorCode.IVConnError_NotAvailableNow, "not connected to the cloud")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        request_id = self._pending.add(future)
        wait = timeout or self.request_timeout
        try:
            try:
                await ws.send(Request(request_id, op, data).encode())
            except websockets.ConnectionClosed:
                raise ConnError(ErrorCode.IVConnError_Disconnected, "the link closed") from None
            async with asyncio.timeout(wait):
                reply = await future
        except TimeoutError:
            raise IVError.of(
                ErrorCode.IVMessageError_timeout, f"no answer to {op} in {wait:g} s"
            ) from None
        finally:
            self._pending.take(request_id)
        return result_of(reply)

    def _fail_pending(self) -> None:
        for future in self._pending.take_all():
            if not future.done():
                future.set_exception(
                    ConnError(ErrorCode.IVConnError_Disconnected, "the link closed")
                )


class RetrySoon:
    """Runs ``attempt`` in the background until one succeeds after the latest
    :meth:`ask`: first after the delay asked, then backing off (doubling from ``first``
    up to ``cap`` seconds) while it fails. It stops while ``ready()`` is false (offline:
    the next login does the work). Asking while it runs makes it run once more."""

    def __init__(
        self,
        attempt: Callable[[], Awaitable[bool]],
        ready: Callable[[], bool],
        *,
        first: float = 1.0,
        cap: float = 10.0,
    ) -> None:
        self._attempt, self._ready = attempt, ready
        self.first, self.cap = first, cap
        self._wanted = False
        self._task: asyncio.Task[None] | None = None

    def ask(self, delay: float | None = None) -> None:
        self._wanted = True
        if self._task is None or self._task.done():
            wait = self.first if delay is None else delay
            self._task = asyncio.get_running_loop().create_task(self._run(wait))

    async def _run(self, wait: float) -> None:
        while self._wanted:
            await asyncio.sleep(wait)
            if not self._ready():
                return
            self._wanted = False
            if await self._attempt():
                wait = 0.0
            else:
                self._wanted = True
                wait = min(self.cap, max(self.first, wait * 2))
