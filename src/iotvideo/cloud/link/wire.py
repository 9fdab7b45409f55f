"""The link WebSockets' wire: a lean RFC 6455 server for ``/link/device`` and ``/link/app``.

Why not uvicorn's WebSocket protocol and the ASGI app: a cloud holds tens of thousands of
link connections, nearly all idle. Through uvicorn each one kept a ``websockets`` protocol
machine, the parsed handshake (request and response, their headers), an ASGI scope, an
``asyncio.Queue`` and events, and the coroutine chain of the ASGI layers: about 17 KB of a
device's 28 at rest (tracemalloc). :class:`LinkWire`, made by ``router.LinkProtocol``
(uvicorn's WebSocket protocol class, ``ws=`` in its config), takes over once uvicorn has
parsed the HTTP upgrade: for the two link paths it answers the handshake itself and keeps
one small object per connection (bytes not yet parsed, messages not yet read, a waiter);
any other path goes on to uvicorn's own WebSocket protocol and the ASGI app, as before.

What the link needs of RFC 6455, and no more: masked client frames, text and binary
messages (fragmented or not) up to ``ws_max_size``, ping/pong, the close handshake, no
extensions and no subprotocols. Keepalive pings are sent by the presence sweep (one pass
over all sessions, not a timer per connection): :meth:`LinkWire.keepalive`.

:class:`LinkSocket` is what a session needs of its WebSocket; :class:`AsgiLinkSocket` is
the same over an ASGI WebSocket, for when the app runs under another server.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hashlib
import ipaddress
import logging
import struct
from typing import TYPE_CHECKING, Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

try:  # the C speedup websockets ships where it builds
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

__all__ = ["AsgiLinkSocket", "LinkSocket", "LinkWire", "accept_key", "client_address"]

log = logging.getLogger("iotvideo.cloud.link")
#: Where uvicorn logs each WebSocket it accepts (at info), as it did for the link's.
_server_log = logging.getLogger("uvicorn.error")

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA
#: Messages received and not yet read by the session before the socket stops reading.
_MAX_UNREAD = 32
#: Fragments one message may come in (empty ones count: they cost a list entry each).
_MAX_FRAGMENTS = 1024
#: Seconds the cloud waits for the peer's close frame after sending its own.
_CLOSE_TIMEOUT = 10.0


class LinkSocket(Protocol):
    """What a link session needs of its WebSocket."""

    @property
    def client_host(self) -> str:
        """The peer's address (the forwarded client's behind a trusted proxy)."""
        ...

    @property
    def closed(self) -> bool:
        """The connection is gone, or the cloud has said close."""
        ...

    async def receive(self) -> str | bytes | None:
        """The next message (text or binary), or None once the peer is gone."""
        ...

    async def send_text(self, text: str) -> None:
        """Send a text message; waits while the peer's buffers are full. ConnectionError
        once the connection is gone."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Start the close handshake (no wait for the peer's answer)."""
        ...

    def abort(self) -> None:
        """Drop the connection at once (a peer that stopped reading)."""
        ...

    def keepalive(self, now: float) -> None:
        """Ping a peer silent for the server's ping interval; drop it when the ping
        timeout passes with no answer. ``now``: the event loop's time. The presence sweep
        calls this for every session, so no connection keeps a timer of its own."""
        ...

    def limit_messages(self, size: int | None) -> None:
        """Close the connection with 1009 on a message over ``size`` bytes from now on
        (None: the server's own maximum). Before its login a peer has nothing to say but
        the login: a few KB."""
        ...


def _frame(opcode: int, payload: bytes) -> bytes:
    """A server frame (unmasked, final)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


def _close_frame(code: int, reason: str) -> bytes:
    return _frame(_CLOSE, struct.pack("!H", code) + reason.encode()[:120])


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key + _GUID, usedforsecurity=False).digest())


def _valid_key(key: bytes | None) -> bool:
    try:
        return key is not None and len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _trusted(allowed: str) -> tuple[bool, tuple[_Network, ...]]:
    """uvicorn's ``forwarded_allow_ips`` ("*", or addresses and networks, comma-separated):
    whether every peer is trusted, and the trusted networks."""
    hosts = [h.strip() for h in allowed.split(",") if h.strip()]
    networks = []
    for host in hosts:
        with contextlib.suppress(ValueError):  # a socket path or a name: never a TCP peer
            networks.append(ipaddress.ip_network(host, strict=False))
    return "*" in hosts, tuple(networks)


def client_address(peer: str, forwarded_for: list[bytes], allowed: str | None) -> str:
    """The client's address: ``peer``'s, or, when ``peer`` is a trusted proxy (uvicorn's
    ``forwarded_allow_ips``, as its proxy-headers middleware reads it), the nearest
    untrusted address in ``X-Forwarded-For``."""
    if not forwarded_for or allowed is None:
        return peer
    everyone, networks = _trusted(allowed)

    def trusted(host: str) -> bool:
        if everyone:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in networks)

    if not trusted(peer):
        return peer
    hops = [h.strip() for h in b",".join(forwarded_for).decode("latin-1").split(",")]
    hops = [h for h in hops if h]
    if not hops:
        return peer
    if everyone:
        return hops[0]
    for hop in reversed(hops):
        if not trusted(hop):
            return hop
    return hops[0]


class LinkWire(asyncio.Protocol):
    """A server WebSocket connection over an asyncio transport (see the module's text).

    uvicorn makes one per upgrade request and feeds it the request's head; subclasses
    say which paths are theirs (:meth:`route`) and start serving once the handshake is
    answered (:meth:`opened`). Implements :class:`LinkSocket`.
    """

    __slots__ = (
        "_app_state",
        "_buffer",
        "_close_sent",
        "_close_timer",
        "_config",
        "_drained",
        "_fragments",
        "_gone",
        "_heard",
        "_max_size",
        "_open",
        "_ping_at",
        "_server_state",
        "_unread",
        "_waiter",
        "client_host",
        "transport",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self.transport: asyncio.Transport | None = None
        self.client_host = ""
        self._open = False
        #: Bytes received and not yet parsed: b"" between frames (the usual case), a
        #: bytearray while a frame arrives in pieces (appended to in place: a frame
        #: trickled in byte by byte costs linear time, not quadratic).
        self._buffer: bytes | bytearray = b""
        #: A fragmented message being received: its opcode, its size so far, then its
        #: payloads.
        self._fragments: list[Any] | None = None
        #: Whole messages the session has not read yet (None: none).
        self._unread: list[str | bytes] | None = None
        #: The session waiting for a message; the writers waiting for the buffer to drain.
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._gone = False
        self._close_sent = False
        self._close_timer: asyncio.TimerHandle | None = None
        #: The loop's time when the peer was last heard from, and when it was pinged.
        self._heard = 0.0
        self._ping_at = 0.0
        self._max_size: int = config.ws_max_size

    # What subclasses decide

    def route(self, path: bytes) -> str | None:
        """None: not a path of ours (uvicorn's WebSocket protocol and the ASGI app take
        the connection). "": accept. Otherwise the HTTP status that refuses it."""
        raise NotImplementedError

    def opened(self, path: bytes) -> None:
        """The handshake was answered (101): start serving."""
        raise NotImplementedError

    # The connection, from uvicorn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._server_state.connections.add(self)  # type: ignore[arg-type]
        peer = transport.get_extra_info("peername")
        self.client_host = str(peer[0]) if isinstance(peer, tuple) else ""

    def data_received(self, data: bytes) -> None:
        if not self._open:
            if self.transport is not None and not self._close_sent:
                self._handshake(data)
            return
        self._heard = asyncio.get_running_loop().time()
        self._ping_at = 0.0
        if self._buffer:
            self._buffer += data  # a bytearray
        else:
            self._buffer = data
        self._parse()

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        self._server_state.connections.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def shutdown(self) -> None:
        """The server is stopping: say so (1012, service restart) and hang up."""
        if self.transport is None:
            return
        if self._open:
            self._send_close(_close_frame(1012, "the cloud is restarting"))
        self.transport.close()
        self._wake()

    # The handshake

    def _handshake(self, head: bytes) -> None:
        """Answer the upgrade request whose head uvicorn passes on (one call, whole)."""
        assert self.transport is not None
        lines = head.split(b"\r\n")
        method, _, rest = lines[0].partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        verdict = self.route(path)
        if verdict is None:
            self._hand_over(head)
            return
        headers: dict[bytes, bytes] = {}
        forwarded: list[bytes] = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"x-forwarded-for":
                forwarded.append(value.strip())
            elif name:
                headers[name] = value.strip()
        key = headers.get(b"sec-websocket-key")
        if method != b"GET" or not _valid_key(key):
            self._refuse("400 Bad Request")
            return
        if headers.get(b"sec-websocket-version") != b"13":
            self._refuse("426 Upgrade Required", b"Sec-WebSocket-Version: 13\r\n")
            return
        if verdict:
            self._refuse(verdict)
            return
        assert key is not None
        allowed = self._config.forwarded_allow_ips if self._config.proxy_headers else None
        self.client_host = client_address(
            self.client_host, forwarded, allowed if isinstance(allowed, str) else None
        )
        response = [
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: ",
            accept_key(key),
            b"\r\n",
        ]
        for name, value in self._server_state.default_headers:
            response += [name, b": ", value, b"\r\n"]
        response.append(b"\r\n")
        self.transport.write(b"".join(response))
        _server_log.info('%s - "WebSocket %s" [accepted]', self.client_host, path.decode())
        self._open = True
        self._heard = asyncio.get_running_loop().time()
        self.opened(path)

    def _refuse(self, status: str, extra: bytes = b"") -> None:
        assert self.transport is not None
        _server_log.info('%s - "WebSocket" %s', self.client_host, status)
        self._close_sent = True
        self.transport.write(
            f"HTTP/1.1 {status}\r\n".encode()
            + extra
            + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        self.transport.close()

    def _hand_over(self, head: bytes) -> None:
        """Not ours: uvicorn's WebSocket protocol and the ASGI app take the connection."""
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol,
        )

        transport = self.transport
        assert transport is not None
        self._server_state.connections.discard(self)
        self.transport = None
        other = WebSocketsSansIOProtocol(self._config, self._server_state, self._app_state)
        other.connection_made(transport)
        transport.set_protocol(other)
        other.data_received(head)

    # Frames in

    def _parse(self) -> None:
        buf = self._buffer
        pos, end = 0, len(buf)
        max_size = self._max_size
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            opcode, length, head = b0 & 0x0F, b1 & 0x7F, pos + 2
            if length == 126:
                if end - head < 2:
                    break
                (length,) = struct.unpack_from("!H", buf, head)
                head += 2
            elif length == 127:
                if end - head < 8:
                    break
                (length,) = struct.unpack_from("!Q", buf, head)
                head += 8
            if b0 & 0x70 or not b1 & 0x80:
                self._fail(1002, "client frames are masked and use no extension")
                return
            if opcode >= 0x8 and (length > 125 or not b0 & 0x80):
                self._fail(1002, "control frames are short and whole")
                return
            # A continuation adds to its message; a ping between fragments does not.
            so_far = self._fragments[1] if self._fragments and opcode == 0x0 else 0
            if so_far + length > max_size:
                self._fail(1009, f"messages are at most {max_size} bytes")
                return
            if end - head < 4 + length:
                break
            start = head + 4
            payload = apply_mask(buf[start : start + length], buf[head:start])
            pos = start + length
            if not self._frame_in(opcode, bool(b0 & 0x80), payload):
                return
        if pos >= end:
            self._buffer = b""
        elif isinstance(buf, bytearray):
            del buf[:pos]  # buf is self._buffer
        else:
            self._buffer = bytearray(buf[pos:])

    def _frame_in(self, opcode: int, fin: bool, payload: bytes) -> bool:
        """Handle one frame; False once reading stops (the connection is closing)."""
        if opcode == _PING:
            # Not while the peer leaves our frames unread (RFC 6455 lets a pong answer
            # only the latest ping): a flood of pings must not pile pongs up here.
            if not self._close_sent and self._drained is None and self.transport is not None:
                self.transport.write(_frame(_PONG, payload))
            return True
        if opcode == _PONG:
            return True
        if opcode == _CLOSE:
            self._on_close(payload)
            return False
        if opcode in (_TEXT, _BINARY):
            if self._fragments is not None:
                self._fail(1002, "a message began before the last one ended")
                return False
            if not fin:
                self._fragments = [opcode, len(payload), payload]
                return True
            return self._message(opcode, payload)
        if opcode == 0x0:
            if self._fragments is None:
                self._fail(1002, "a continuation frame with no message")
                return False
            self._fragments.append(payload)
            self._fragments[1] += len(payload)
            if len(self._fragments) > 2 + _MAX_FRAGMENTS:
                self._fail(1009, f"messages are at most {_MAX_FRAGMENTS} fragments")
                return False
            if not fin:
                return True
            kind, _size, *parts = self._fragments
            self._fragments = None
            return self._message(kind, b"".join(parts))
        self._fail(1002, f"unknown opcode {opcode}")
        return False

    def _message(self, opcode: int, payload: bytes) -> bool:
        if self._close_sent:
            return True  # past our close: read on until the peer's close frame
        message: str | bytes = payload
        if opcode == _TEXT:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(1007, "text frames are UTF-8")
                return False
        if self._unread is None:
            self._unread = [message]
        else:
            self._unread.append(message)
            if len(self._unread) == _MAX_UNREAD and self.transport is not None:
                self.transport.pause_reading()  # resumed as the session reads
        self._wake()
        return True

    def _on_close(self, payload: bytes) -> None:
        """The peer's close frame: answer it (unless it answers ours) and hang up."""
        if self.transport is None:
            return
        self._send_close(_frame(_CLOSE, payload[:2]))
        self.transport.close()
        self._wake()

    def _fail(self, code: int, reason: str) -> None:
        """The peer broke the protocol: close with ``code``; what it sends next is
        discarded (its frames can no longer be told apart)."""
        log.info("link connection from %s closed: %s", self.client_host, reason)
        self._buffer = b""
        self._fragments = None
        self._open = False  # data_received discards from now on
        transport = self.transport
        if transport is not None:
            self._send_close(_close_frame(code, reason))
            if transport.can_write_eof():
                # Half-close and read on until the peer hangs up: closing with its frames
                # still unread would reset the connection, and the peer could lose our
                # close frame (and its code) with it.
                transport.write_eof()
                self._hang_up_later()
            else:
                transport.close()
        self._wake()

    def _send_close(self, frame: bytes) -> None:
        """Our close frame: once, and nothing after it."""
        if not self._close_sent and self.transport is not None:
            self._close_sent = True
            self.transport.write(frame)

    def _hang_up_later(self) -> None:
        """Drop the connection if the peer has not hung up within ``_CLOSE_TIMEOUT``."""
        if self._close_timer is None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(_CLOSE_TIMEOUT, self.abort)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # LinkSocket, for the session

    @property
    def closed(self) -> bool:
        return self._gone or self._close_sent

    async def receive(self) -> str | bytes | None:
        while True:
            unread = self._unread
            if unread:
                message = unread.pop(0)
                if not unread:
                    self._unread = None
                if len(unread) == _MAX_UNREAD // 2 and self.transport is not None:
                    self.transport.resume_reading()
                return message
            if self._gone or self._close_sent:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    async def send_text(self, text: str) -> None:
        if self._gone or self._close_sent or self.transport is None:
            raise ConnectionError("the link connection is closed")
        self.transport.write(_frame(_TEXT, text.encode()))
        drained = self._drained
        if drained is not None:
            await asyncio.shield(drained)

    async def close(self, code: int, reason: str) -> None:
        if self._gone or self._close_sent:
            return
        self._send_close(_close_frame(code, reason))
        self._hang_up_later()
        self._wake()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def limit_messages(self, size: int | None) -> None:
        self._max_size = self._config.ws_max_size if size is None else size

    def keepalive(self, now: float) -> None:
        interval = self._config.ws_ping_interval
        timeout = self._config.ws_ping_timeout
        if not self._open or self.closed or self.transport is None or interval is None:
            return
        if self._ping_at:
            if timeout is not None and now - self._ping_at > timeout:
                log.info("link connection from %s: no answer to a ping; dropped", self.client_host)
                self.transport.abort()
        elif now - self._heard > interval:
            self._ping_at = now
            self.transport.write(_frame(_PING, b""))


class AsgiLinkSocket:
    """:class:`LinkSocket` over an ASGI WebSocket (the app under another server; that
    server pings and parses)."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._max_size: int | None = None

    @property
    def client_host(self) -> str:
        return self._ws.client.host if self._ws.client else ""

    @property
    def closed(self) -> bool:
        return self._ws.application_state == WebSocketState.DISCONNECTED

    async def receive(self) -> str | bytes | None:
        try:
            message = await self._ws.receive()
        except (RuntimeError, OSError, WebSocketDisconnect):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        data = text if text is not None else bytes(message.get("bytes") or b"")
        if self._max_size is not None and len(data) > self._max_size:
            await self.close(1009, f"messages are at most {self._max_size} bytes")
            return None
        return data

    def limit_messages(self, size: int | None) -> None:
        """Checked once a message is whole (the server below reads it first)."""
        self._max_size = size

    async def send_text(self, text: str) -> None:
        try:
            await self._ws.send_text(text)
        except (RuntimeError, OSError, WebSocketDisconnect) as exc:  # uvicorn: OSError
            raise ConnectionError("the link connection is closed") from exc

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await self._ws.close(code, reason[:120])

    def abort(self) -> None:
        """Starlette has no abort: the ASGI ``send`` is a bound method of the server's
        protocol, whose transport we abort (its ``connection_lost`` wakes every waiter)."""
        protocol = getattr(getattr(self._ws, "_send", None), "__self__", None)
        transport = getattr(protocol, "transport", None)
        if transport is not None and hasattr(transport, "abort"):
            transport.abort()

    def keepalive(self, now: float) -> None:
        """The server pings."""
