"""``GET /metrics``: the instance's numbers in the Prometheus text format.

What is counted (every series is this instance's; sum them over instances):

- ``iotvideo_link_requests_total{peer, op, code}`` and ``iotvideo_link_request_seconds
  {peer, op}``: link requests answered (``peer`` app or device; ``code`` 0 or the seed's
  error code), with latency histograms; device reports are ``peer="device", op="report"``;
- ``iotvideo_http_requests_total{route, status}`` and ``iotvideo_http_request_seconds
  {route}``: the vendor API, VAS (uploads included), firmware and health routes, by route
  template (no ids in labels);
- ``iotvideo_vendor_actions_total{action, code}``: vendor-API actions and their outcome;
- ``iotvideo_device_events_total{outcome}``: device events ``stored`` or dropped as a
  ``duplicate`` (a device resending what was acknowledged);
- ``iotvideo_webhook_failures_total``: calls to the vendor's webhook that failed;
- ``iotvideo_link_sessions{peer}``, ``iotvideo_devices_online`` (devices connected to this
  instance), ``iotvideo_bus_up`` (1 when the bus between instances works) and
  ``iotvideo_dependency_up{dependency}`` (the database, from the last request that used it);
- ``iotvideo_bus_lag_seconds``: a probe sent through the bus to this instance on every
  heartbeat, and how long it took to come back (a slow or stuck Redis shows here);
- ``iotvideo_webhook_pending``: vendor notifications not delivered yet (due or backing
  off; a vendor's endpoint that is down keeps it up);
- ``iotvideo_state_commits_total``, ``iotvideo_state_changes_total`` (their ratio is the
  group commit's batch size) and ``iotvideo_state_queue`` (changes waiting to be stored).

Who may read it: loopback clients that no proxy relayed (a request carrying
``X-Forwarded-For`` or ``Forwarded`` came through a balancer), or anyone sending
``Authorization: Bearer <token>`` when ``IOTVIDEO_METRICS_TOKEN`` is set.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware", "router"]

router = APIRouter()

#: Latency buckets (seconds): sub-millisecond link requests up to slow device round trips.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """One cloud app's metrics, in a registry of its own (clouds in one process, as in
    tests, do not mix)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.link_requests = Counter(
            "iotvideo_link_requests", "Link requests answered.", ["peer", "op", "code"], registry=r
        )
        self.link_seconds = Histogram(
            "iotvideo_link_request_seconds",
            "Time to answer a link request.",
            ["peer", "op"],
            buckets=BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "iotvideo_http_requests", "HTTP requests answered.", ["route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "iotvideo_http_request_seconds",
            "Time to answer an HTTP request.",
            ["route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.vendor_actions = Counter(
            "iotvideo_vendor_actions", "Vendor-API actions.", ["action", "code"], registry=r
        )
        self.device_events = Counter(
            "iotvideo_device_events", "Device events received.", ["outcome"], registry=r
        )
        self.webhook_failures = Counter(
            "iotvideo_webhook_failures", "Failed calls to the vendor's webhook.", registry=r
        )
        self._state: Any = None

    def watch(self, state: Any) -> None:
        """Read the gauges from the app's state at each scrape."""
        self._state = state
        self.registry.register(_Gauges(self))

    def link_request(self, peer: str, op: str, code: int, seconds: float) -> None:
        self.link_requests.labels(peer, op, str(code)).inc()
        self.link_seconds.labels(peer, op).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Gauges(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        state = self.metrics._state
        sessions = list(getattr(state, "link_sessions", ()) or ())
        by_peer = GaugeMetricFamily(
            "iotvideo_link_sessions", "Link sessions open on this instance.", labels=["peer"]
        )
        for peer in ("app", "device"):
            by_peer.add_metric([peer], sum(1 for s in sessions if getattr(s, "kind", "") == peer))
        yield by_peer
        online = sum(
            1 for s in sessions if getattr(s, "kind", "") == "device" and getattr(s, "tid", None)
        )
        yield GaugeMetricFamily(
            "iotvideo_devices_online", "Devices connected to this instance.", value=online
        )
        bus = getattr(state, "bus", None)
        up = 1 if bus is not None and getattr(bus, "connected", False) else 0
        yield GaugeMetricFamily("iotvideo_bus_up", "1 when the bus between instances works.", up)
        dependency = GaugeMetricFamily(
            "iotvideo_dependency_up",
            "1 when the dependency answered its last use.",
            labels=["dependency"],
        )
        link = getattr(state, "link", None)
        outages = getattr(link, "outages", None)
        down = set(getattr(outages, "down_now", lambda: set())())
        dependency.add_metric(["database"], 0 if "the database" in down else 1)
        yield dependency
        hub = getattr(link, "hub", None)
        if hub is not None:
            info = GaugeMetricFamily(
                "iotvideo_instance_info",
                "This instance's id (devices.online_instance names it), always 1.",
                labels=["id"],
            )
            info.add_metric([hub.instance_id], 1)
            yield info
        lag = getattr(hub, "lag", None)
        if lag is not None:
            yield GaugeMetricFamily(
                "iotvideo_bus_lag_seconds",
                "How long the last probe took through the bus back to this instance.",
                value=lag,
            )
        sender = getattr(state, "webhooks", None)
        if sender is not None:
            yield GaugeMetricFamily(
                "iotvideo_webhook_pending",
                "Vendor notifications not delivered yet (due or backing off).",
                value=sender.pending,
            )
        things = getattr(link, "things", None)
        if things is not None:
            yield CounterMetricFamily(
                "iotvideo_state_commits",
                "Transactions that stored device state (group commit: many changes each).",
                value=things.batches,
            )
            yield CounterMetricFamily(
                "iotvideo_state_changes",
                "Device state changes stored (reports, writes, events...).",
                value=things.batched,
            )
            yield GaugeMetricFamily(
                "iotvideo_state_queue",
                "Device state changes waiting for the next commit.",
                value=things.queued,
            )


def _loopback(request: Request) -> bool:
    """A client on this host, not one relayed by a proxy on this host (HAProxy or nginx
    add X-Forwarded-For: deploy/haproxy.cfg does)."""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/metrics", summary="Prometheus metrics of this instance")
async def metrics(request: Request) -> Response:
    """The Prometheus text format. Loopback clients, or ``Authorization: Bearer`` with
    the configured ``metrics_token``; others get 403."""
    token = request.app.state.settings.metrics_token
    given = request.headers.get("authorization", "")
    allowed = _loopback(request) or (
        bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    )
    if not allowed:
        return JSONResponse(
            {"error": "metrics are for loopback clients or Authorization: Bearer <metrics token>"},
            403,
        )
    body = request.app.state.metrics.exposition()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts and times each HTTP request by its route template (pure ASGI: no buffering
    of bodies, websockets untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            state = getattr(scope.get("app"), "state", None)
            metrics: Metrics | None = getattr(state, "metrics", None)
            if metrics is not None:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                metrics.http_requests.labels(route, str(status["code"])).inc()
                metrics.http_seconds.labels(route).observe(time.perf_counter() - started)
