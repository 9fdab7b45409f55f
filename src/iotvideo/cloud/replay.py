"""Which vendor-API signatures were used, and for what: replays and action swaps refused.

TC3 as the official clients use it signs only ``content-type`` and ``host`` beside the body
and the timestamp: not ``X-TC-Action``, and there is no nonce. So a captured request could
be sent again, or sent as another action with the same body, for as long as its timestamp
is accepted (``signature_max_skew``). The ledger remembers every signature for that long,
with when it was first used: a signature is accepted again only within ``repeat_window``
seconds (2 by default) of its first use, whatever the action. Later, as the same action
(a replay) or as another one (a swapped action), it is refused.

Why a window and not "once only": two legitimate requests with the same body in the same
second carry the same signature (identical calls, or e.g. DisableDevice then DeleteDevice
of the same Tids), and the official client cannot tell them apart. What remains: a request
captured and sent again within those seconds runs again, as another action too. TLS keeps
requests from being captured in the first place; a deployment whose clients all sign
``X-TC-Action`` can set the window to 0.

One process keeps the ledger in memory; several instances share it in Redis (the bus's
server), so a replay sent to another instance is refused too.
"""

from __future__ import annotations

import heapq
from typing import Any, Protocol

__all__ = ["MemoryLedger", "RedisLedger", "SignatureLedger", "make_ledger"]


class SignatureLedger(Protocol):
    async def first_use(
        self, signature: str, action: str, now: float, ttl: int
    ) -> tuple[str, float]:
        """Record ``(action, now)`` for ``signature`` unless it is already recorded; return
        what is recorded (this use, or the first)."""
        ...

    async def close(self) -> None: ...


class MemoryLedger:
    """The ledger of one cloud process; entries expire after their ``ttl``."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}
        self._expiries: list[tuple[float, str]] = []

    async def first_use(
        self, signature: str, action: str, now: float, ttl: int
    ) -> tuple[str, float]:
        while self._expiries and self._expiries[0][0] <= now:
            _, old = heapq.heappop(self._expiries)
            self._seen.pop(old, None)
        recorded = self._seen.setdefault(signature, (action, now))
        if recorded == (action, now):
            heapq.heappush(self._expiries, (now + ttl, signature))
        return recorded

    async def close(self) -> None:
        self._seen.clear()


class RedisLedger:
    """The ledger shared by every instance: one key per signature, set if absent."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url)

    async def first_use(
        self, signature: str, action: str, now: float, ttl: int
    ) -> tuple[str, float]:
        key = f"iv:sig:{signature}"
        value = f"{now!r} {action}"
        if await self._redis.set(key, value, nx=True, ex=ttl):
            return action, now
        stored = await self._redis.get(key)
        if stored is None:  # expired between the two calls: this is a first use again
            await self._redis.set(key, value, nx=True, ex=ttl)
            return action, now
        first, _, first_action = stored.decode().partition(" ")
        return first_action, float(first)

    async def close(self) -> None:
        await self._redis.aclose()


def make_ledger(bus: str) -> SignatureLedger:
    """In memory with the in-process bus; in Redis when instances share a Redis bus."""
    if bus.startswith(("redis://", "rediss://", "unix://")):
        return RedisLedger(bus)
    return MemoryLedger()
