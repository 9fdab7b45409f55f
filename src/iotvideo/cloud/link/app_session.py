"""An app's link session: token login, grants per device, thing-model and data operations.

An app reaches a device through a binding (owner or guest) or through a token that grants
that device (the binding's token, CreateDevToken, CreateAnonymousAccessToken) passed to
``subscribe``. Owners may do everything; guests and token holders may read, watch, take
actions other than the built-in ``_`` ones and pass data, but not write settings (ProWritable,
ProUser) nor add or delete ProUser objects (8003).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from iotvideo.cloud.access import NEVER, TokenKind, device_role, find_token
from iotvideo.cloud.db import among
from iotvideo.cloud.db.tables import access_tokens, app_users, bindings, devices
from iotvideo.cloud.link.session import LinkSession, OpHandler, field
from iotvideo.cloud.ota import find_offer
from iotvideo.cloud.provisioning import issue_bind_token
from iotvideo.cloud.streams import stream_key
from iotvideo.cloud.turn import ice_servers
from iotvideo.protocol import link
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.link import Push, Reply, Request
from iotvideo.protocol.stream import StreamClaim, TicketError, verify_ticket

__all__ = ["AppSession"]

log = logging.getLogger("iotvideo.cloud.link")

MAX_TIMEOUT = 60.0
#: Largest SDP relayed (an offer with many candidates is a few KB).
MAX_SDP = 32_000
MEDIA_KINDS = ("monitor", "live", "transmission", "playback", "download")
#: Requests about a device's memory card, relayed to the device as they are.
CARD_OPS = ("card.days", "card.list")


@dataclass
class Grant:
    """Why this session may reach a device."""

    role: str  # owner, guest or visitor (a device or anonymous token)
    token_hash: str | None
    expires_at: int


def _stream_key(tid: str) -> str:
    """The user-event key of a device's ticket sessions (ActionContext.end_streams)."""
    return f"stream:{tid}"


def _no_relation(message: str) -> IVError:
    return IVError.of(ErrorCode.IVASrvErr_dst_error_relation, message)


class AppSession(LinkSession):
    kind = "app"
    #: A write the cloud has read is stored and handed to the device even if the writer
    #: closes its link at once (docs/protocol.md, "Writes").
    lasting_ops = frozenset({"prop.write"})
    #: What a restream server's ticket login may watch (None: a user's login).
    _stream_claim: StreamClaim | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_id = ""
        self.vendor_id = ""
        self._login_hash = ""
        self._grants: dict[str, Grant] = {}
        self._watched: set[str] = set()
        self._anonymous = False

    async def run(self) -> None:
        login = await self.handshake()
        if login is None:
            return
        try:
            data = await self._login(login)
        except IVError as exc:
            await self.send(Reply(login.id, int(exc.code), msg=exc.message))
            await self.close(link.CLOSE_REFUSED, exc.code, exc.message)
            return
        try:
            await self.send(Reply(login.id, 0, data))
            await self.serve(self._handlers(), concurrent=True)
        finally:
            await self.finish()
            await self._leave()

    # Login

    async def _login(self, login: Request) -> dict[str, Any]:
        if "stream_ticket" in login.data:
            return await self._ticket_login(field(login.data, "stream_ticket", str))
        access_id = field(login.data, "access_id", str)
        token = field(login.data, "access_token", str)
        now = self.ctx.now()
        async with self.ctx.db.read() as conn:
            row = await find_token(conn, token, now=now)
            if (
                row is None
                or row.access_id != access_id
                or row.kind not in (TokenKind.USER, TokenKind.ANONYMOUS)
            ):
                raise IVError.of(
                    ErrorCode.IVTermErr_msg_calling_check_token_error,
                    "the access token is unknown, expired or revoked; get a new one",
                )
            self.vendor_id = (
                await conn.scalar(
                    select(app_users.c.vendor_id).where(app_users.c.access_id == access_id)
                )
            ) or ""
            if row.kind == TokenKind.ANONYMOUS and row.tid:
                self._grants[row.tid] = Grant("visitor", row.token_hash, row.expires_at)
            self._anonymous = row.kind == TokenKind.ANONYMOUS
            bound = await _bindings(conn, access_id)
        self.access_id = access_id
        self._login_hash = row.token_hash
        for tid, role in bound.items():
            self._grants.setdefault(tid, Grant(role, None, NEVER))
        await self.ctx.hub.watch_user(access_id, self)
        for tid in self._grants:
            await self._watch(tid)
        self.expires_at = row.expires_at
        return {
            "time": now,
            "session": self.sid,
            "access_id": access_id,
            "expires_at": row.expires_at,
            "devices": sorted(self._grants),
            # Where a new app's event cursor starts (event.since after a reconnect).
            "event_seq": await self.ctx.messaging.last_event_seq(),
        }

    async def _ticket_login(self, ticket: str) -> dict[str, Any]:
        """A restream server signs in with a DescribeStream ticket: it may watch that one
        device channel (media.ice, media.offer of a monitor, media.candidate), as long as
        the device streams and the AccessId's relation holds (checked again when the
        vendor changes either: DisableDeviceStream ends the session)."""
        settings = self.ctx.settings
        key = stream_key(settings.data, settings.stream_key).public_key()
        try:
            claim = verify_ticket(key, ticket, now=self.ctx.now())
        except TicketError as exc:
            raise IVError.of(ErrorCode.IVTermErr_msg_calling_check_token_error, str(exc)) from None
        self._stream_claim = claim
        async with self.ctx.db.read() as conn:
            await self._check_stream(conn, claim)
            self.vendor_id = (
                await conn.scalar(
                    select(app_users.c.vendor_id).where(app_users.c.access_id == claim.access_id)
                )
            ) or ""
        self.access_id = claim.access_id
        self._grants[claim.tid] = Grant("visitor", None, NEVER)
        await self.ctx.hub.watch_user(_stream_key(claim.tid), self)
        await self._watch(claim.tid)
        return {
            "time": self.ctx.now(),
            "session": self.sid,
            "access_id": claim.access_id,
            "expires_at": NEVER,
            "devices": [claim.tid],
            "event_seq": 0,
        }

    async def _check_stream(self, conn: AsyncConnection, claim: StreamClaim) -> None:
        """8002/8003 unless the ticket's device still streams to its AccessId."""
        row = (
            await conn.execute(
                select(devices.c.disabled, devices.c.stream_disabled).where(
                    devices.c.tid == claim.tid
                )
            )
        ).first()
        if row is None:
            raise IVError.of(ErrorCode.IVASrvErr_dst_notexsit, f"no device {claim.tid!r}")
        if row.disabled or row.stream_disabled:
            raise _no_relation(f"streaming of {claim.tid} is disabled")
        token = None
        if claim.token_hash:
            token = (
                await conn.execute(
                    select(access_tokens).where(
                        access_tokens.c.token_hash == claim.token_hash,
                        access_tokens.c.revoked_at.is_(None),
                        access_tokens.c.expires_at > self.ctx.now(),
                    )
                )
            ).first()
            if token is None:
                raise _no_relation("the device token of this stream was revoked or expired")
        await device_role(conn, claim.access_id, claim.tid, token)

    async def _recheck_stream(self, claim: StreamClaim) -> None:
        try:
            async with self.ctx.db.read() as conn:
                await self._check_stream(conn, claim)
        except IVError as exc:
            await self.close(link.CLOSE_REFUSED, exc.code, exc.message)

    async def _leave(self) -> None:
        if self._stream_claim is not None:
            await self.ctx.hub.unwatch_user(_stream_key(self._stream_claim.tid), self)
        if self.access_id:
            await self.ctx.hub.unwatch_user(self.access_id, self)
        for tid in list(self._watched):
            await self.ctx.hub.unwatch(tid, self)
        self._watched.clear()

    # Grants and watching

    async def _watch(self, tid: str) -> None:
        if tid not in self._watched:
            self._watched.add(tid)
            await self.ctx.hub.watch(tid, self)

    async def _unwatch(self, tid: str, code: int, msg: str) -> None:
        self._grants.pop(tid, None)
        if tid in self._watched:
            self._watched.discard(tid)
            await self.ctx.hub.unwatch(tid, self)
            await self.send(Push("unsubscribed", {"tid": tid, "code": int(code), "msg": msg}))

    async def grant(self, tid: str, *, owner_only: bool = False, what: str = "") -> Grant:
        """The session's grant for ``tid``: 8002 no such device, 8003 no relation or not owner."""
        if self._stream_claim is not None and tid != self._stream_claim.tid:
            raise _no_relation(f"this stream ticket does not open {tid}")
        found = self._grants.get(tid)
        if found is not None and found.expires_at <= self.ctx.now():
            await self._unwatch(
                tid, ErrorCode.IVASrvErr_dst_error_relation, "the device token expired"
            )
            found = None
        if found is None:
            found = await self._grant_from_db(tid)
        if owner_only and found.role != "owner":
            raise _no_relation(f"only the owner may {what or 'do this'}")
        return found

    async def _grant_from_db(self, tid: str) -> Grant:
        """A grant through the user's binding (the rule of cloud/access.py)."""
        async with self.ctx.db.read() as conn:
            role = await device_role(conn, self.access_id, tid)
        self._grants[tid] = Grant(role, None, NEVER)
        await self._watch(tid)
        return self._grants[tid]

    # Pushes and changes from elsewhere in the cloud

    def on_push(self, tid: str, op: str, data: dict[str, Any]) -> None:
        if tid in self._grants:
            self.send_soon(Push(op, {"tid": tid, **data}))

    def on_user_event(self, access_id: str, event: dict[str, Any]) -> None:
        if event.get("k") == "netcfg":
            self.send_soon(Push("netcfg", {k: v for k, v in event.items() if k != "k"}))
        elif event.get("k") == "bus.back":
            # Pushes may have been lost while the bus was away: the app fetches its
            # missed events (event.since), as after a reconnect of its own.
            self.send_soon(Push("resync", {}))
        else:
            self.spawn(self._recheck())

    async def _recheck(self) -> None:
        """Tokens or bindings changed: drop what is no longer granted, add new bindings."""
        if self._stream_claim is not None:
            await self._recheck_stream(self._stream_claim)
            return
        now = self.ctx.now()
        async with self.ctx.db.read() as conn:
            live = await conn.scalar(
                select(access_tokens.c.token_hash).where(
                    access_tokens.c.token_hash == self._login_hash,
                    access_tokens.c.revoked_at.is_(None),
                    access_tokens.c.expires_at > now,
                )
            )
            if live is None:
                await self.close(
                    link.CLOSE_REFUSED,
                    ErrorCode.IVTermErr_msg_calling_check_token_error,
                    "the access token was revoked",
                )
                return
            bound = await _bindings(conn, self.access_id)
            hashes = [g.token_hash for g in self._grants.values() if g.token_hash]
            alive = set(
                await conn.scalars(
                    select(access_tokens.c.token_hash).where(
                        among(conn, access_tokens.c.token_hash, hashes),
                        access_tokens.c.revoked_at.is_(None),
                        access_tokens.c.expires_at > now,
                    )
                )
            )
        for tid, grant in list(self._grants.items()):
            if tid in bound:
                self._grants[tid] = Grant(bound[tid], None, NEVER)
            elif grant.token_hash is None or grant.token_hash not in alive:
                await self._unwatch(
                    tid, ErrorCode.IVTermErr_msg_calling_relation_modify, "the relation changed"
                )
        for tid, role in bound.items():
            if tid not in self._grants:
                self._grants[tid] = Grant(role, None, NEVER)
                await self._watch(tid)

    # Operations

    def _handlers(self) -> dict[str, OpHandler]:
        if self._stream_claim is not None:  # a restream server's ticket: watching only
            return {
                "media.ice": self._media_ice,
                "media.offer": self._media_offer,
                "media.candidate": self._media_candidate,
                "media.close": self._media_close,
                "ping": self._ping,
            }
        return {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe_op,
            "prop.read": self._read,
            "model.get": self._model,
            "prop.write": self._write,
            "prop.add": self._add,
            "prop.delete": self._delete,
            "action": self._action,
            "data": self._data,
            "server.data": self._server_data,
            "bindtoken.create": self._bind_token,
            "device.identity": self._identity,
            "media.ice": self._media_ice,
            "ota.query": self._ota_query,
            "media.offer": self._media_offer,
            "media.candidate": self._media_candidate,
            "media.close": self._media_close,
            "ping": self._ping,
            "card.days": self._card,
            "card.list": self._card,
            "event.since": self._events_since,
        }

    async def _events_since(self, request: Request) -> dict[str, Any]:
        """Events of the devices this session may see, after the cursor ``after`` (what an
        app missed while it was offline): ``{"events": [...], "more": bool}``."""
        after = field(request.data, "after", int)
        limit = field(request.data, "limit", int, required=False, default=200)
        if after < 0 or not 1 <= limit <= 500:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_user_cmd_param_error, "after >= 0, limit 1..500"
            )
        events, more = await self.ctx.messaging.events_since(
            self._grants, after, now=self.ctx.now(), limit=limit
        )
        return {"events": events, "more": more}

    async def _subscribe(self, request: Request) -> dict[str, Any]:
        tid = field(request.data, "tid", str)
        token = field(request.data, "access_token", str)
        async with self.ctx.db.read() as conn:
            row = await find_token(conn, token, now=self.ctx.now())
            role = None
            if row is not None and row.kind == TokenKind.BINDING:
                role = await conn.scalar(
                    select(bindings.c.role).where(
                        bindings.c.tid == tid, bindings.c.access_id == self.access_id
                    )
                )
        if row is None:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_calling_check_token_error,
                "the token is unknown, expired or revoked",
            )
        if row.access_id != self.access_id or row.tid != tid or row.kind == TokenKind.USER:
            raise _no_relation(f"this token does not grant device {tid}")
        self._grants[tid] = Grant(role or "visitor", row.token_hash, row.expires_at)
        await self._watch(tid)
        _, _, state = await self.ctx.things.snapshot(tid)
        online = state.get("ProReadonly", {}).get("_online", {}).get("stVal", 0)
        return {"tid": tid, "role": self._grants[tid].role, "online": online}

    async def _unsubscribe_op(self, request: Request) -> dict[str, Any]:
        tid = field(request.data, "tid", str)
        self._grants.pop(tid, None)
        if tid in self._watched:
            self._watched.discard(tid)
            await self.ctx.hub.unwatch(tid, self)
        return {}

    async def _read(self, request: Request) -> dict[str, Any]:
        tid = field(request.data, "tid", str)
        path = field(request.data, "path", str, required=False, default="")
        await self.grant(tid)
        return {"value": await self.ctx.messaging.read(tid, path)}

    async def _model(self, request: Request) -> dict[str, Any]:
        """The device's product model with the built-ins: what each object's type is."""
        tid = field(request.data, "tid", str)
        await self.grant(tid)
        _, model, _ = await self.ctx.things.snapshot(tid)
        return {"model": model.describe()}

    async def _write(self, request: Request) -> dict[str, Any]:
        tid = field(request.data, "tid", str)
        await self.grant(tid, owner_only=True, what="change settings")
        result = await self.ctx.messaging.write(
            tid, field(request.data, "path", str), field(request.data, "json", str)
        )
        return dict(result)

    async def _add(self, request: Request) -> dict[str, Any]:
        tid = field(request.data, "tid", str)
        await self.grant(tid, owner_only=True, what="add user properties")
        value = await self.ctx.messaging.user_add(
            tid, field(request.data, "path", str), field(request.data, "json", str)
        )
        return {"value": value}

    async def _delete(self, request: Request) -> dict[str, Any]:
        tid = field(request.data, "tid", str)
        await self.grant(tid, owner_only=True, what="delete user properties")
        await self.ctx.messaging.user_delete(tid, field(request.data, "path", str))
        return {}

    async def _action(self, request: Request) -> dict[str, Any]:
        tid = field(request.data, "tid", str)
        path = field(request.data, "path", str)
        builtin = path.split(".")[1:2] and path.split(".")[1].startswith("_")
        await self.grant(tid, owner_only=bool(builtin), what="run built-in actions")
        value = await self.ctx.messaging.action(
            tid, path, field(request.data, "json", str), timeout=_timeout(request.data)
        )
        return {"value": value}

    async def _data(self, request: Request) -> dict[str, Any]:
        tid = field(request.data, "tid", str)
        await self.grant(tid)
        try:
            payload = link.decode_data(request.data.get("data"))
        except ValueError as exc:
            raise IVError.of(ErrorCode.IVTermErr_msg_user_cmd_param_error, str(exc)) from None
        reply = bool(request.data.get("reply", False))
        answer = await self.ctx.messaging.send_data(
            tid, payload, reply=reply, timeout=_timeout(request.data)
        )
        return {"data": link.encode_data(answer)} if answer is not None else {}

    async def _server_data(self, request: Request) -> dict[str, Any]:
        from iotvideo.cloud.link.webhook import forward

        url = field(request.data, "url", str)
        try:
            payload = link.decode_data(request.data.get("data", ""))
        except ValueError as exc:
            raise IVError.of(ErrorCode.IVTermErr_msg_user_cmd_param_error, str(exc)) from None
        answer = await forward(
            self.ctx, self.vendor_id, self.access_id, url, payload, _timeout(request.data)
        )
        return {"data": link.encode_data(answer)}

    async def _ota_query(self, request: Request) -> dict[str, Any]:
        """DeviceMgr.query_new_version: the seed's {downUrl, version, upgDescs}, or {}."""
        tid = field(request.data, "tid", str)
        current = field(request.data, "current_version", str, required=False)
        language = field(request.data, "language", str, required=False)
        await self.grant(tid)
        async with self.ctx.db.read() as conn:
            offer = await find_offer(conn, tid, current, language)
        if offer is None:
            return {}
        return {"downUrl": offer["url"], "version": offer["version"], "upgDescs": offer["upgDescs"]}

    # Media signaling: the app offers, the device answers; both get ICE servers.

    async def _media_ice(self, request: Request) -> dict[str, Any]:
        """STUN/TURN servers (with fresh TURN credentials) for the app's next connection to
        ``tid``: only a session that may reach the device gets relay credentials."""
        await self.grant(field(request.data, "tid", str))
        return {"ice_servers": ice_servers(self.ctx.settings, self.access_id, now=self.ctx.now())}

    async def _media_offer(self, request: Request) -> dict[str, Any]:
        """Relay an SDP offer to the device and its answer back."""
        tid = field(request.data, "tid", str)
        sdp = field(request.data, "sdp", str)
        if len(sdp) > MAX_SDP:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_user_cmd_param_error, f"SDP longer than {MAX_SDP} bytes"
            )
        kind = field(request.data, "kind", str, required=False, default="monitor")
        if kind not in MEDIA_KINDS:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_user_cmd_param_error,
                f"kind must be one of {', '.join(MEDIA_KINDS)}",
            )
        source = field(request.data, "source", str, required=False, default="")
        definition = field(request.data, "definition", str, required=False, default="low")
        claim = self._stream_claim
        if claim is not None and (kind != "monitor" or source != claim.source):
            raise _no_relation("this stream ticket opens its channel's live video only")
        grant = await self.grant(tid)
        body: dict[str, Any] = {
            "sdp": sdp,
            "kind": kind,
            "source": source,
            "definition": definition,
            "from": self.access_id,
            "role": grant.role,
            "ice_servers": ice_servers(self.ctx.settings, tid, now=self.ctx.now()),
        }
        if kind == "playback":
            body["at"] = field(request.data, "at", int, required=False, default=0)
            speed = request.data.get("speed", 1.0)
            if isinstance(speed, bool) or not isinstance(speed, int | float):
                raise IVError.of(ErrorCode.IVTermErr_msg_user_cmd_param_error, "speed: a number")
            body["speed"] = speed
        outcome = await self.ctx.hub.ask(
            tid, "media.offer", body, _timeout(request.data) or self.ctx.settings.device_timeout
        )
        return outcome.raise_for_code()

    async def _media_candidate(self, request: Request) -> dict[str, Any]:
        """An ICE candidate trickled after ``media.offer`` (``""`` ends them), for the
        session the device's answer named; relayed to the device."""
        tid = field(request.data, "tid", str)
        body: dict[str, Any] = {
            "session": field(request.data, "session", int),
            "candidate": field(request.data, "candidate", str),
            "from": self.access_id,
        }
        if "mid" in request.data:
            body["mid"] = field(request.data, "mid", str)
        if "index" in request.data:
            body["index"] = field(request.data, "index", int)
        await self.grant(tid)
        outcome = await self.ctx.hub.ask(
            tid, "media.candidate", body, self.ctx.settings.device_timeout
        )
        return outcome.raise_for_code()

    async def _media_close(self, request: Request) -> dict[str, Any]:
        """End one of this app's media sessions on the device (a player that hangs up
        without the peer connection's own goodbye: a browser tab, Home Assistant)."""
        tid = field(request.data, "tid", str)
        body = {"session": field(request.data, "session", int), "from": self.access_id}
        await self.grant(tid)
        outcome = await self.ctx.hub.ask(tid, "media.close", body, self.ctx.settings.device_timeout)
        return outcome.raise_for_code()

    async def _card(self, request: Request) -> dict[str, Any]:
        """card.days / card.list: the device's memory card, asked of the device itself
        (anyone who may watch the device may list its recordings)."""
        tid = field(request.data, "tid", str)
        await self.grant(tid)
        body = {k: v for k, v in request.data.items() if k not in ("tid", "timeout")}
        outcome = await self.ctx.hub.ask(
            tid, request.op, body, _timeout(request.data) or self.ctx.settings.device_timeout
        )
        return outcome.raise_for_code()

    async def _ping(self, _request: Request) -> dict[str, Any]:
        return {"time": self.ctx.now()}

    async def _identity(self, request: Request) -> dict[str, Any]:
        """A device's public identity key, to check it is the one on the LAN."""
        tid = field(request.data, "tid", str)
        async with self.ctx.db.read() as conn:
            row = (
                await conn.execute(
                    select(devices.c.public_key, devices.c.vendor_id, devices.c.product_id).where(
                        devices.c.tid == tid
                    )
                )
            ).first()
        if row is None or row.vendor_id != self.vendor_id:
            raise IVError.of(ErrorCode.IVASrvErr_dst_notexsit, f"no device {tid!r}")
        return {
            "tid": tid,
            "pid": row.product_id,
            "public_key": base64.b64encode(row.public_key).decode(),
        }

    async def _bind_token(self, _request: Request) -> dict[str, Any]:
        if self._anonymous:
            raise IVError.of(
                ErrorCode.IVNetCfgErr_GetTokenErr, "anonymous visitors cannot bind devices"
            )
        async with self.ctx.db.begin() as conn:
            token, expires = await issue_bind_token(
                conn,
                self.access_id,
                now=self.ctx.now(),
                max_live=self.ctx.settings.max_bind_tokens,
            )
        return {"token": token, "expires_at": expires}


async def _bindings(conn: AsyncConnection, access_id: str) -> dict[str, str]:
    """The devices the user is bound to, with the user's role."""
    rows = await conn.execute(
        select(bindings.c.tid, bindings.c.role).where(bindings.c.access_id == access_id)
    )
    return {r.tid: r.role for r in rows}


def _timeout(data: dict[str, Any]) -> float | None:
    value = data.get("timeout")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_TIMEOUT
    ):
        raise IVError.of(
            ErrorCode.IVTermErr_msg_user_cmd_param_error,
            f"timeout must be in (0, {MAX_TIMEOUT:g}] s",
        )
    return float(value)
