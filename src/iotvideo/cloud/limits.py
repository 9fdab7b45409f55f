"""Abuse limits: how fast one key, one address or one session may ask, and how many
connections may wait for a login. Sans-IO: every decision takes ``now``.

Each cloud instance keeps its own counts, so N instances behind a balancer allow up to N
times a limit; the limits exist to keep one client from exhausting an instance, not to
meter use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Limits", "RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """Token buckets by key: ``rate`` per second on average, bursts up to ``burst``.

    Idle keys are forgotten once their bucket is full again, so memory follows the number
    of keys active within ``burst / rate`` seconds.
    """

    rate: float
    burst: float
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _checked: float = 0.0

    def allow(self, key: str, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` from ``key``'s bucket; False (and nothing taken) if it is short."""
        self._forget_idle(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens < cost:
            return False
        bucket.tokens -= cost
        return True

    def retry_after(self, key: str, now: float, cost: float = 1.0) -> float:
        """Seconds until ``key`` may spend ``cost`` again."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        return max(0.0, (cost - tokens) / self.rate)

    def _forget_idle(self, now: float) -> None:
        refill = self.burst / self.rate
        if now - self._checked < refill:
            return
        self._checked = now
        for key in [k for k, b in self._buckets.items() if now - b.at >= refill]:
            del self._buckets[key]


@dataclass
class Limits:
    """The limits of one cloud process (from its settings)."""

    #: Vendor-API requests per verified key.
    vendor: RateLimiter
    #: Link logins (app and device, refused or not) per client address.
    logins: RateLimiter
    #: Link requests per logged-in session.
    link_rate: float
    link_burst: float
    #: Link connections that have not logged in yet, in all and per client address.
    max_pending: int
    max_pending_per_address: int = 100
    pending: int = 0
    pending_by_address: dict[str, int] = field(default_factory=dict)

    def start_waiting(self, address: str) -> bool:
        """Count a connection from ``address`` that waits for its login; False (and not
        counted) when that address has ``max_pending_per_address`` waiting already, so
        that one client cannot fill the cloud's pending slots and lock others out."""
        waiting = self.pending_by_address.get(address, 0)
        if waiting >= self.max_pending_per_address:
            return False
        self.pending_by_address[address] = waiting + 1
        self.pending += 1
        return True

    def stop_waiting(self, address: str) -> None:
        """The connection logged in or left."""
        self.pending -= 1
        waiting = self.pending_by_address.pop(address, 1) - 1
        if waiting:
            self.pending_by_address[address] = waiting

    def session_limiter(self) -> RateLimiter:
        return RateLimiter(self.link_rate, self.link_burst)
