"""One link WebSocket: the handshake, frames in and out, errors, closing.

Runs on the event loop. Subclasses (device and app sessions) implement ``login`` and the
operations; this class keeps the wire rules of ``docs/protocol.md``: a ``hello`` with a
fresh nonce first, a ``login`` request within ``login_timeout``, malformed frames answered
with a code while the connection stays up, and a ``bye`` push before the cloud closes.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from iotvideo.cloud.link.context import LinkContext
from iotvideo.cloud.link.wire import LinkSocket
from iotvideo.cloud.outages import database_unavailable
from iotvideo.protocol import link
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.link import FrameError, Push, Reply, Request
from iotvideo.protocol.rpc import reply_to

__all__ = ["LinkSession", "OpHandler", "field"]

log = logging.getLogger("iotvideo.cloud.link")

OpHandler = Callable[[Request], Awaitable[dict[str, Any]]]

#: Outgoing frames a session may have queued before the cloud gives up on the peer.
MAX_BACKLOG = 1024
#: Requests of one peer answered at once; more are refused with 20100 until replies go
#: out. Bounds what one flooding peer costs (tasks, memory) and what it can push onward.
MAX_IN_FLIGHT = 32
#: A message before login is at most this big: a login is a few hundred bytes. A bigger
#: one closes the connection (1009) from its frame's header, before its bytes arrive.
MAX_LOGIN_BYTES = 8192


class LinkSession:
    """The transport half of a device or app session."""

    kind = "link"
    #: Ops carried out to their end once read, even when the peer leaves before its reply:
    #: their tasks are not cancelled when the session ends (see ``finish``).
    lasting_ops: frozenset[str] = frozenset()

    def __init__(self, ws: LinkSocket, ctx: LinkContext) -> None:
        self.ws = ws
        self.ctx = ctx
        self.sid = secrets.token_hex(8)
        self.nonce = base64.urlsafe_b64encode(secrets.token_bytes(24)).decode("ascii")
        self.last_seen = time.monotonic()
        #: UNIX time the session's credentials expire (checked by the presence sweep).
        self.expires_at: float = float("inf")
        self.closing = False
        self._send_lock = asyncio.Lock()
        self._backlog = 0
        self._in_flight = 0
        self._rate = ctx.limits.session_limiter()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lasting: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        """Handshake, login, then serve until the peer leaves."""
        raise NotImplementedError

    # Sending

    async def send(self, frame: Request | Reply | Push) -> None:
        if self.closing and not (isinstance(frame, Push) and frame.op == "bye"):
            return
        try:
            async with asyncio.timeout(self.ctx.settings.link_send_timeout):
                async with self._send_lock:
                    await self.ws.send_text(frame.encode())
        except TimeoutError:
            # A peer that stops reading fills its socket buffers and every send waits;
            # a graceful close would never finish flushing either, pinning the session
            # and its buffers: drop the connection (the receive loop then ends).
            log.warning("%s session %s stopped reading; dropping it", self.kind, self.sid)
            self.closing = True
            self.ws.abort()
        except ConnectionError:
            self.closing = True  # the peer is gone; the receive loop will notice

    def send_soon(self, frame: Request | Reply | Push) -> None:
        """Queue a frame from synchronous code (bus handlers); in order, bounded."""
        if self.closing:
            return
        if self._backlog >= MAX_BACKLOG:
            log.warning("%s session %s is not reading; closing it", self.kind, self.sid)
            self.spawn(
                self.close(link.CLOSE_RETRY, ErrorCode.IVConnError_SendDataFailed, "too slow")
            )
            return
        self._backlog += 1
        self.spawn(self._send_counted(frame))

    async def _send_counted(self, frame: Request | Reply | Push) -> None:
        try:
            await self.send(frame)
        finally:
            self._backlog -= 1

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self, ws_code: int, code: int, msg: str) -> None:
        """Say ``bye`` with the seed code, then close the WebSocket."""
        if self.closing and self.ws.closed:
            return
        self.closing = True
        await self.send(Push("bye", {"code": int(code), "msg": msg}))
        await self.ws.close(ws_code, f"{int(code)} {msg}"[:120])

    # Receiving

    async def receive(self) -> Request | Reply | Push | FrameError | None:
        """The next frame, a FrameError for a bad one, or None when the peer is gone."""
        text = await self.ws.receive()
        if text is None:
            return None
        self.last_seen = time.monotonic()
        if not isinstance(text, str):
            return FrameError(
                ErrorCode.IVTermErr_msg_gdm_handle_parse_json_fail, "frames are JSON text"
            )
        try:
            return link.parse_frame(text)
        except FrameError as exc:
            return exc

    async def refuse(self, error: FrameError) -> None:
        """Answer a malformed frame; the connection stays up."""
        if error.id is not None:
            await self.send(Reply(error.id, int(error.code), msg=error.message))
        else:
            await self.send(Push("error", {"code": int(error.code), "msg": error.message}))

    async def handshake(self) -> Request | None:
        """Send ``hello``; return the peer's ``login`` request (None if it never came)."""
        hello = {
            "v": link.PROTOCOL_VERSION,
            "nonce": self.nonce,
            "time": self.ctx.now(),
            "time_ms": int(self.ctx.clock() * 1000),
            "session": self.sid,
        }
        limits = self.ctx.limits
        address = self.ws.client_host
        # Counted until it logs in or leaves: the router caps how many wait in all, this
        # how many from one address.
        if not limits.start_waiting(address):
            await self.close(
                link.CLOSE_RETRY,
                ErrorCode.IVTermErr_msg_gdm_handle_processing,
                f"too many connections from {address} waiting to log in; retry shortly",
            )
            return None
        try:
            self.ws.limit_messages(MAX_LOGIN_BYTES)
            await self.send(Push("hello", hello))
            try:
                async with asyncio.timeout(self.ctx.settings.login_timeout):
                    frame = await self.receive()
            except TimeoutError:
                await self.close(
                    link.CLOSE_REFUSED,
                    ErrorCode.IVTermErr_msg_calling_handshake_timeout,
                    "no login",
                )
                return None
        finally:
            limits.stop_waiting(address)
        self.ws.limit_messages(None)
        if isinstance(frame, Request) and frame.op == "login":
            if not limits.logins.allow(address, self.ctx.clock()):
                wait = limits.logins.retry_after(address, self.ctx.clock())
                # Not a refusal of the credentials: the client reconnects with backoff.
                await self.close(
                    link.CLOSE_RETRY,
                    ErrorCode.IVTermErr_msg_gdm_handle_processing,
                    f"too many logins from {address}; retry in {wait:.1f} s",
                )
                return None
            self._rate = limits.session_limiter()
            return frame
        if frame is not None:
            await self.close(
                link.CLOSE_REFUSED,
                ErrorCode.IVTermErr_msg_access_lib_not_init,
                "the first frame must be login",
            )
        return None

    async def serve(self, handlers: dict[str, OpHandler], *, concurrent: bool) -> None:
        """Answer requests until the peer leaves. ``concurrent`` runs each in its own task."""
        while not self.closing:
            frame = await self.receive()
            if frame is None:
                return
            if isinstance(frame, FrameError):
                await self.refuse(frame)
            elif isinstance(frame, Reply):
                self.on_reply(frame)
            elif isinstance(frame, Request):
                if not self._rate.allow("", self.ctx.clock()):
                    await self.send(
                        Reply(
                            frame.id,
                            ErrorCode.IVTermErr_msg_gdm_handle_processing,
                            msg=f"more than {self._rate.rate:g} requests per second; slow down",
                        )
                    )
                elif not concurrent:
                    await self._answer(handlers, frame)
                elif self._in_flight >= MAX_IN_FLIGHT:
                    # Answered inline: a peer that does not read its replies stops being
                    # read (the send waits), so it cannot queue more.
                    await self.send(
                        Reply(
                            frame.id,
                            ErrorCode.IVTermErr_msg_gdm_handle_processing,
                            msg=f"{MAX_IN_FLIGHT} requests are in flight; wait for replies",
                        )
                    )
                else:
                    self._in_flight += 1
                    task = self.spawn(self._answer_counted(handlers, frame))
                    if frame.op in self.lasting_ops:
                        self._lasting.add(task)
                        task.add_done_callback(self._lasting.discard)

    async def _answer_counted(self, handlers: dict[str, OpHandler], request: Request) -> None:
        try:
            await self._answer(handlers, request)
        finally:
            self._in_flight -= 1

    async def _answer(self, handlers: dict[str, OpHandler], request: Request) -> None:
        handler = handlers.get(request.op)
        started = time.perf_counter()
        code = 0
        try:
            code = await self._answer_with(handler, request)
        finally:
            op = request.op if handler is not None else "unknown"
            self.ctx.metrics.link_request(self.kind, op, code, time.perf_counter() - started)

    async def _answer_with(self, handler: OpHandler | None, request: Request) -> int:
        """Answer ``request``; the code answered."""
        outcome: Any
        try:
            if handler is None:
                raise IVError.of(
                    ErrorCode.IVTermErr_msg_user_cmd_type_error, f"unknown op {request.op!r}"
                )
            outcome = await handler(request)
            self.ctx.outages.up("the database")
        except IVError as exc:
            outcome = exc
        except Exception as exc:
            if database_unavailable(exc):
                self.ctx.outages.down("the database", exc)
                outcome = IVError.of(
                    ErrorCode.IVTermErr_msg_calling_no_srv_addr,
                    "the cloud's database is unavailable; retry shortly",
                )
            else:
                log.exception("%s op %s failed", self.kind, request.op)
                outcome = exc
        reply = reply_to(request.id, outcome)
        await self.send(reply)
        return reply.code

    def on_reply(self, reply: Reply) -> None:
        """A reply to a request the cloud sent; sessions that send requests override this."""

    async def finish(self) -> None:
        """End the session's work: every task but the lasting ops' requests, which run on
        (their replies go nowhere)."""
        for task in list(self._tasks - self._lasting):
            task.cancel()
        self.closing = True


def field(
    data: dict[str, Any], name: str, kind: type, *, required: bool = True, default: Any = None
) -> Any:
    """A typed field of a request's data; 20143 if it is missing or of the wrong type."""
    value = data.get(name, default)
    if value is None and not required:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise IVError.of(
            ErrorCode.IVTermErr_msg_user_cmd_param_error, f"{name} must be a {kind.__name__}"
        )
    return value
