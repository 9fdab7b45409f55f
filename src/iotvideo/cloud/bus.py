"""The bus between cloud instances: publish/subscribe on named channels.

One process needs no broker: :class:`MemoryBus` delivers in process. Several cloud
processes share a :class:`RedisBus` (``--bus redis://host:6379/0``). Both tell the
publisher how many subscribers received a message, which is how the cloud knows whether a
device's session exists anywhere.

Handlers run on the event loop, in the order messages arrive on a channel; they must not
block (hand work to a task or a queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.link import Backoff

__all__ = ["Bus", "Handler", "MemoryBus", "RedisBus", "make_bus"]

log = logging.getLogger("iotvideo.cloud.bus")

Handler = Callable[[bytes], None]


class Bus(Protocol):
    #: False while the bus cannot deliver (its broker is unreachable); /healthz says so.
    connected: bool
    #: Called when the bus is back after an outage: what was published meanwhile (or was
    #: on its way when the broker went) is lost, and whoever waits for it must fetch it.
    on_reconnect: list[Callable[[], object]]

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, channel: str, message: bytes) -> int:
        """Send ``message``; return how many subscribers (instances) received it."""
        ...

    async def subscribe(self, channel: str, handler: Handler) -> None: ...

    async def unsubscribe(self, channel: str, handler: Handler) -> None: ...


class _Handlers:
    """Local handlers per channel, shared by both buses."""

    def __init__(self) -> None:
        self.by_channel: dict[str, list[Handler]] = {}

    def add(self, channel: str, handler: Handler) -> bool:
        """Add; True if it is the channel's first handler."""
        handlers = self.by_channel.setdefault(channel, [])
        handlers.append(handler)
        return len(handlers) == 1

    def remove(self, channel: str, handler: Handler) -> bool:
        """Remove; True if the channel has no handler left."""
        handlers = self.by_channel.get(channel)
        if handlers is None:
            return False
        with contextlib.suppress(ValueError):
            handlers.remove(handler)
        if handlers:
            return False
        del self.by_channel[channel]
        return True

    def dispatch(self, channel: str, message: bytes) -> int:
        handlers = list(self.by_channel.get(channel, ()))
        for handler in handlers:
            try:
                handler(message)
            except Exception:  # one faulty handler must not starve the others
                log.exception("bus handler for %s failed", channel)
        return len(handlers)


class MemoryBus:
    """Delivery within one process. A channel counts as one subscriber however many
    handlers it has, as with Redis, where each instance subscribes once."""

    connected = True  # nothing to lose

    def __init__(self) -> None:
        self._handlers = _Handlers()
        self.on_reconnect: list[Callable[[], object]] = []  # never called: never lost

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._handlers.by_channel.clear()

    async def publish(self, channel: str, message: bytes) -> int:
        if channel not in self._handlers.by_channel:
            return 0
        # Deliver after the publisher resumes, as a network bus would.
        asyncio.get_running_loop().call_soon(self._handlers.dispatch, channel, message)
        return 1

    async def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.add(channel, handler)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.remove(channel, handler)


#: Pooled Redis connections for publishing. When all are busy (a login storm publishes
#: one kick per login) a publish waits for one, for at most REDIS_POOL_WAIT seconds:
#: redis-py's default pool raises at once instead, which refused those logins as "bus
#: unavailable" (20004) and sent the devices into backoff.
REDIS_POOL = 64
REDIS_POOL_WAIT = 10.0
#: Longest a subscription waits for Redis's confirmation (then it goes on unconfirmed).
SUBSCRIBE_WAIT = 2.0


class RedisBus:
    """Redis pub/sub: a pool of connections publishes, one listens, for the whole process."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        self._url = url
        # Pooled connections go stale when Redis restarts: retry a command on a fresh one.
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_POOL,
            timeout=REDIS_POOL_WAIT,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            socket_connect_timeout=2,
        )
        self._redis: Any = redis.Redis.from_pool(pool)
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._handlers = _Handlers()
        self._lock = asyncio.Lock()
        #: Subscriptions sent and not yet confirmed by Redis, by channel.
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self.connected = False
        self.on_reconnect: list[Callable[[], object]] = []

    async def start(self) -> None:
        await self._redis.ping()
        self.connected = True
        self._pubsub = self._redis.pubsub()
        # A channel no one publishes to, so that the connection is in pub/sub mode and
        # the reader can start before the first real subscription.
        await self._pubsub.subscribe("iv:bus:keepalive")
        self._reader = asyncio.create_task(self._read(), name="redis-bus-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self._redis.aclose()

    async def publish(self, channel: str, message: bytes) -> int:
        """Send ``message``; 20004 (retry shortly) while Redis is unreachable."""
        try:
            return int(await self._redis.publish(channel, message))
        except _redis_errors() as exc:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_calling_no_srv_addr,
                "the cloud's message bus is unavailable; retry shortly",
            ) from exc

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Deliver the channel's messages to ``handler``; returns once Redis has confirmed
        the subscription (at most SUBSCRIBE_WAIT s), so that what is published after it
        arrives. (Sent but not yet read by Redis, a SUBSCRIBE missed the messages other
        connections published meanwhile: an app that had just logged in lost the push of
        an event stored right after its login, and its cursor, read at login, was
        already past the event.)"""
        async with self._lock:
            first = self._handlers.add(channel, handler)
            waiter = self._confirmations.get(channel)
            if first and self.connected:
                waiter = asyncio.get_running_loop().create_future()
                self._confirmations[channel] = waiter
                try:
                    await self._pubsub.subscribe(channel)
                except _redis_errors():
                    # Away: the reader subscribes to every channel when it is back.
                    self._confirmations.pop(channel, None)
                    waiter = None
        if waiter is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), SUBSCRIBE_WAIT)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        async with self._lock:
            if self._handlers.remove(channel, handler) and self.connected:
                with contextlib.suppress(*_redis_errors()):
                    await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        """Deliver messages; when Redis goes away, reconnect with backoff (and subscribe
        again to every channel) for as long as it takes. One log line per outage."""
        backoff = Backoff(base=0.2, cap=5.0)
        while True:
            try:
                if not self.connected:
                    await self._resubscribe()
                    self.connected = True
                    backoff.reset()
                    log.warning("Redis bus reconnected")
                    for callback in list(self.on_reconnect):
                        try:
                            callback()
                        except Exception:
                            log.exception("a bus reconnect callback failed")
                async for message in self._pubsub.listen():
                    kind = message.get("type")
                    if kind == "message":
                        channel = message["channel"].decode()
                        self._handlers.dispatch(channel, message["data"])
                    elif kind == "subscribe":
                        waiter = self._confirmations.pop(message["channel"].decode(), None)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any redis or socket error: the connection is gone
                if self.connected:
                    log.warning("Redis bus lost (%s); reconnecting", exc)
                self.connected = False
                await asyncio.sleep(backoff.next())

    async def _resubscribe(self) -> None:
        async with self._lock:
            channels = list(self._handlers.by_channel)
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = self._redis.pubsub()
            await self._pubsub.subscribe("iv:bus:keepalive", *channels)


def _redis_errors() -> tuple[type[Exception], ...]:
    """What a Redis that went away raises (and the socket errors beneath)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (OSError, RedisConnectionError, RedisTimeoutError)


def make_bus(url: str) -> Bus:
    """``memory`` (the default) or ``redis://...``."""
    if url in ("", "memory"):
        return MemoryBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBus(url)
    raise ValueError(f"unknown bus {url!r}: use 'memory' or redis://HOST:PORT/DB")
