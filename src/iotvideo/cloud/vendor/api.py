"""The vendor API: authenticate a request, validate its parameters, run its action.

:class:`VendorApi` takes a :class:`VendorRequest` (plain values, no HTTP objects) and
returns the fields of a successful response, or raises :class:`VendorError`. The HTTP
route in :mod:`iotvideo.cloud.vendor.router` is a thin adapter around it.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Column, Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import AnyRow, api_keys, app_users, devices, products
from iotvideo.cloud.limits import RateLimiter
from iotvideo.cloud.link.context import LinkContext
from iotvideo.cloud.replay import MemoryLedger, SignatureLedger
from iotvideo.cloud.vendor.errors import Code, VendorError, not_found
from iotvideo.cloud.vendor.params import Params, unflatten, validate
from iotvideo.protocol import tc3

__all__ = ["API_VERSION", "ActionContext", "VendorApi", "VendorRequest"]

API_VERSION = "2019-11-26"
log = logging.getLogger("iotvideo.cloud.vendor")

Handler = Callable[["ActionContext", Any], Awaitable[dict[str, Any]]]

_RETRIES = 3


@dataclass(frozen=True)
class VendorRequest:
    """A vendor-API HTTP request as plain values; header names are lower case."""

    method: str
    headers: Mapping[str, str]
    query: str
    body: bytes


@dataclass(frozen=True)
class _Action:
    params: type[Params]
    handler: Handler
    writes: bool


@dataclass
class ActionContext:
    """What an action handler works with: one transaction, scoped to one vendor."""

    conn: AsyncConnection
    vendor_id: str
    now_ms: int
    request_id: str
    #: The link (sessions, messaging), when the cloud runs one.
    link: LinkContext | None = None
    #: Callbacks to run after the transaction commits (e.g. to kick a disabled device).
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: The request's Host header (the base of URLs handed back when no public URL is set).
    host: str = ""

    def public_base(self) -> str:
        """Where clients reach this cloud: its public URL, else the host the call named."""
        configured = self.link.settings.public_url if self.link is not None else None
        return str(configured or f"http://{self.host}").rstrip("/")

    @property
    def live(self) -> LinkContext:
        """The link, for actions that talk to devices."""
        if self.link is None:
            raise VendorError(Code.UNSUPPORTED_OPERATION, "this cloud runs no link")
        return self.link

    def notify_user(self, access_id: str) -> None:
        """After commit, tell the user's link sessions that tokens or bindings changed."""
        if self.link is not None:
            hub = self.link.hub
            self.after_commit.append(lambda: hub.user_changed(access_id))

    def tell_device(self, tid: str, op: str, data: dict[str, Any]) -> None:
        """After commit, push ``op`` to the device's link session if it is online."""
        if self.link is not None:
            hub = self.link.hub
            self.after_commit.append(lambda: hub.push_device(tid, op, data))

    def end_streams(self, tid: str) -> None:
        """After commit, have the device's stream-ticket sessions (restream servers'
        pulls) check again whether the device streams: DisableDeviceStream ends them."""
        if self.link is not None:
            hub = self.link.hub
            self.after_commit.append(lambda: hub.user_changed(f"stream:{tid}"))

    def kick_device(self, tid: str, code: int, message: str) -> None:
        """After commit, end the device's link session with a seed code."""
        if self.link is not None:
            hub = self.link.hub

            async def kick() -> None:
                await hub.kick(tid, code, message)

            self.after_commit.append(kick)

    @property
    def now(self) -> int:
        """The request's time in UNIX seconds."""
        return self.now_ms // 1000

    async def _one(self, table: Table, key: Column[Any], value: str, what: str) -> AnyRow:
        row = (
            await self.conn.execute(
                select(table).where(key == value, table.c.vendor_id == self.vendor_id)
            )
        ).first()
        if row is None:
            raise not_found(what, value)
        return row

    async def product(self, product_id: str) -> AnyRow:
        return await self._one(products, products.c.product_id, product_id, "ProductId")

    async def device(self, tid: str) -> AnyRow:
        return await self._one(devices, devices.c.tid, tid, "Tid")

    async def user(self, access_id: str) -> AnyRow:
        return await self._one(app_users, app_users.c.access_id, access_id, "AccessId")

    async def devices(self, tids: list[str]) -> list[AnyRow]:
        """All of ``tids`` (duplicates dropped), or ResourceNotFound naming the first missing."""
        wanted = list(dict.fromkeys(tids))
        rows = await self.conn.execute(
            select(devices).where(devices.c.tid.in_(wanted), devices.c.vendor_id == self.vendor_id)
        )
        found = {d.tid: d for d in rows}
        for tid in wanted:
            if tid not in found:
                raise not_found("Tid", tid)
        return [found[t] for t in wanted]


class VendorApi:
    """The action registry and the request pipeline of the vendor API."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], float],
        max_skew: int = 300,
        link: LinkContext | None = None,
        ledger: SignatureLedger | None = None,
        limiter: RateLimiter | None = None,
        repeat_window: float = 2.0,
    ) -> None:
        self._db = db
        self._link = link
        self._clock = clock
        self._max_skew = max_skew
        self._ledger = ledger or MemoryLedger()
        self._limiter = limiter
        self._repeat_window = repeat_window
        self._actions: dict[str, _Action] = {}

    def add(
        self, name: str, params: type[Params], handler: Handler, *, writes: bool = True
    ) -> None:
        """Register an action under its API name (``CreateProduct``).

        Actions with ``writes=False`` only read; they run without a transaction of their
        own, which spares two database round trips.
        """
        self._actions[name] = _Action(params, handler, writes)

    @property
    def actions(self) -> list[str]:
        return sorted(self._actions)

    def params_of(self, name: str) -> type[Params]:
        """The parameter model of the action ``name`` (KeyError if it is not served)."""
        return self._actions[name].params

    async def handle(self, request: VendorRequest, request_id: str) -> dict[str, Any]:
        """Run one request; return the response fields or raise :class:`VendorError`."""
        now_ms = int(self._clock() * 1000)
        auth, timestamp = _parse_auth(request, now_ms // 1000, self._max_skew)
        for attempt in range(_RETRIES):
            try:
                return await self._run(request, request_id, now_ms, auth, timestamp)
            except IntegrityError:
                # A concurrent request took a unique name first; the retry sees its result.
                if attempt == _RETRIES - 1:
                    raise VendorError(
                        Code.RESOURCE_IN_USE, "A concurrent request changed the same resource."
                    ) from None
        raise AssertionError("unreachable")

    async def _run(
        self,
        request: VendorRequest,
        request_id: str,
        now_ms: int,
        auth: tc3.Authorization,
        timestamp: int,
    ) -> dict[str, Any]:
        known = self._actions.get(request.headers.get("x-tc-action", ""))
        async with self._connect(writes=known is not None and known.writes) as conn:
            # Authenticate first: an unsigned caller learns nothing about parameters.
            vendor_id = await _verify_signature(conn, request, auth, timestamp)
            await self._check_replay(auth.signature, request.headers.get("x-tc-action", ""))
            self._check_rate(auth.secret_id)
            action, data, lenient = self._parse_call(request)
            params = validate(action.params, data, lenient=lenient)
            ctx = ActionContext(
                conn,
                vendor_id,
                now_ms,
                request_id,
                self._link,
                host=request.headers.get("host", ""),
            )
            result = await action.handler(ctx, params)
        for callback in ctx.after_commit:
            await callback()
        return result

    def _check_rate(self, secret_id: str) -> None:
        """Per verified key (an unverified one could spend a victim's allowance)."""
        now = self._clock()
        if self._limiter is not None and not self._limiter.allow(secret_id, now):
            wait = self._limiter.retry_after(secret_id, now)
            raise VendorError(
                Code.REQUEST_LIMIT_EXCEEDED,
                f"More than {self._limiter.rate:g} requests per second with this key; "
                f"retry in {wait:.1f} s.",
            )

    async def _check_replay(self, signature: str, action: str) -> None:
        """Refuse a signature first used more than ``repeat_window`` seconds ago, for this
        action (a replay) or another (a swapped action); see :mod:`iotvideo.cloud.replay`."""
        now = self._clock()
        # A signature is valid while its timestamp is within max_skew either side of now.
        ttl = 2 * self._max_skew + 1
        first_action, first_seen = await self._ledger.first_use(signature, action, now, ttl)
        if now - first_seen <= self._repeat_window:
            return  # its first use, or a repeat within the window
        if first_action != action:
            raise VendorError(
                Code.AUTH_SIGNATURE_FAILURE,
                "This signature was made for another action; sign every request anew.",
            )
        raise VendorError(
            Code.AUTH_SIGNATURE_EXPIRE,
            "This signed request was already used; a signature is accepted again only "
            f"within {self._repeat_window:g} s of its first use. Sign it anew.",
        )

    @asynccontextmanager
    async def _connect(self, *, writes: bool) -> AsyncIterator[AsyncConnection]:
        if writes:
            async with self._db.begin() as conn:
                yield conn
        else:
            async with self._db.read() as conn:
                yield conn

    def _parse_call(self, request: VendorRequest) -> tuple[_Action, dict[str, Any], bool]:
        version = request.headers.get("x-tc-version")
        if not version:
            raise VendorError(Code.MISSING_PARAMETER, "The header X-TC-Version is required.")
        if version != API_VERSION:
            raise VendorError(
                Code.NO_SUCH_VERSION, f"Version {version!r} does not exist; use {API_VERSION}."
            )
        name = request.headers.get("x-tc-action", "")
        if not name:
            raise VendorError(Code.MISSING_PARAMETER, "The header X-TC-Action is required.")
        action = self._actions.get(name)
        if action is None:
            raise VendorError(Code.INVALID_ACTION, f"The action {name!r} does not exist.")
        data, lenient = _parse_params(request)
        return action, data, lenient


def _parse_auth(request: VendorRequest, now: int, max_skew: int) -> tuple[tc3.Authorization, int]:
    header = request.headers.get("authorization")
    if not header:
        raise VendorError(
            Code.AUTH_INVALID_AUTHORIZATION,
            "The Authorization header is missing; sign the request with TC3-HMAC-SHA256.",
        )
    try:
        auth = tc3.Authorization.parse(header)
    except ValueError as exc:
        raise VendorError(Code.AUTH_INVALID_AUTHORIZATION, str(exc)) from None
    raw = request.headers.get("x-tc-timestamp", "")
    if not raw.isdigit() or len(raw) > 12:
        raise VendorError(
            Code.MISSING_PARAMETER if not raw else Code.INVALID_PARAMETER,
            "The header X-TC-Timestamp must be the request's UNIX time in seconds.",
        )
    timestamp = int(raw)
    if abs(now - timestamp) > max_skew:
        raise VendorError(
            Code.AUTH_SIGNATURE_EXPIRE,
            f"The signature expired: X-TC-Timestamp is {timestamp - now:+d} s from the server's "
            f"time (at most {max_skew} s allowed). Check the client's clock.",
        )
    if auth.service != tc3.SERVICE:
        raise VendorError(
            Code.AUTH_SIGNATURE_FAILURE, f"The credential scope names service {auth.service!r}."
        )
    if auth.date != tc3.utc_date(timestamp):
        raise VendorError(
            Code.AUTH_SIGNATURE_FAILURE,
            "The credential date is not the UTC date of X-TC-Timestamp.",
        )
    return auth, timestamp


async def _verify_signature(
    conn: AsyncConnection, request: VendorRequest, auth: tc3.Authorization, timestamp: int
) -> str:
    key = (
        await conn.execute(
            select(api_keys.c.secret_key, api_keys.c.vendor_id, api_keys.c.revoked_at).where(
                api_keys.c.secret_id == auth.secret_id
            )
        )
    ).first()
    if key is None or key.revoked_at is not None:
        raise VendorError(
            Code.AUTH_SECRET_ID_NOT_FOUND,
            "The SecretId does not exist or was revoked; create a key with `iotvideo keys create`.",
        )
    query = request.query if request.method == "GET" else ""
    payload = b"" if request.method == "GET" else request.body
    for headers in (request.headers, {k: v.lower() for k, v in request.headers.items()}):
        expected = tc3.sign(
            key.secret_key,
            timestamp=timestamp,
            service=auth.service,
            method=request.method,
            uri="/",
            query=query,
            headers=headers,
            signed_headers=auth.signed_headers,
            payload=payload,
        )
        if hmac.compare_digest(expected, auth.signature):
            return str(key.vendor_id)
    raise VendorError(
        Code.AUTH_SIGNATURE_FAILURE,
        "The signature does not match; check the SecretKey and that the signed body, "
        "Content-Type and Host are sent unchanged.",
    )


def _parse_params(request: VendorRequest) -> tuple[dict[str, Any], bool]:
    """The request's parameters, and whether they came as strings (GET or form)."""
    if request.method == "GET":
        return unflatten(parse_qsl(request.query, keep_blank_values=True)), True
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        text = _decode(request.body)
        return unflatten(parse_qsl(text, keep_blank_values=True)), True
    if content_type != "application/json":
        raise VendorError(
            Code.UNSUPPORTED_PROTOCOL,
            "Send application/json (POST) or application/x-www-form-urlencoded parameters.",
        )
    if not request.body.strip():
        return {}, False
    try:
        data = json.loads(_decode(request.body))
    except (ValueError, RecursionError):
        raise VendorError(Code.INVALID_PARAMETER, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise VendorError(Code.INVALID_PARAMETER, "The request body must be a JSON object.")
    return data, False


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise VendorError(Code.INVALID_PARAMETER, "The request body is not UTF-8.") from None
