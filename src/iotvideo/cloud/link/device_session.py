"""A device's link session: proof-of-key login, reports and events in, requests out."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeGuard

from sqlalchemy import update

from iotvideo.cloud.db.tables import devices
from iotvideo.cloud.link import presence
from iotvideo.cloud.link.hub import Outcome
from iotvideo.cloud.link.session import LinkSession, OpHandler, field
from iotvideo.cloud.ota import find_offer
from iotvideo.cloud.provisioning import present_bind_token
from iotvideo.cloud.storage import channel_view
from iotvideo.cloud.things import DeviceInfo
from iotvideo.cloud.tracing import append_run_log, log_link_message
from iotvideo.cloud.webhooks import enqueue
from iotvideo.protocol import link
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.link import Push, Reply, Request
from iotvideo.protocol.rpc import Outstanding
from iotvideo.protocol.thingmodel import Change, ThingModel, apply

__all__ = ["DeviceSession"]

log = logging.getLogger("iotvideo.cloud.link")

#: How far a device's login timestamp may be from the cloud's clock.
LOGIN_SKEW = 300
#: Requests the cloud has sent a device and awaits answers for; more get 21084 at once.
MAX_DEVICE_IN_FLIGHT = 128
#: The most text one ``log.upload`` carries.
MAX_LOG_UPLOAD = 16 * 1024
#: Ops whose effect the state trace records already (LogType 1 to 6), and the trace's own.
_RECORDED_AS_STATE = frozenset({"prop.write", "action", "trace"})


class DeviceSession(LinkSession):
    kind = "device"
    tid = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Requests relayed to the device: id -> (the asker's instance, its request id).
        self._inflight: Outstanding[tuple[str, str]] = Outstanding()
        self._online = False
        #: Frames for the device that came before its login reply went out: sent right
        #: after it, in order. (A write relayed before the reply, whose ``writable`` was
        #: read before that write was stored, would be undone by the reply's older value.)
        self._held: list[Request | Push] | None = []
        #: On the trace list: its link messages are recorded (and it uploads its log).
        self._traced = False

    async def run(self) -> None:
        login = await self.handshake()
        if login is None:
            return
        try:
            values = await self._login(login)
        except IVError as exc:
            await self.send(Reply(login.id, int(exc.code), msg=exc.message))
            await self.close(link.CLOSE_REFUSED, exc.code, exc.message)
            return
        try:
            reply = {"time": self.ctx.now(), "session": self.sid, **values}
            reply["bindable"] = self._bindable
            reply["trace"] = self._traced
            await self.send(Reply(login.id, 0, reply))
            held, self._held = self._held or [], None
            for frame in held:
                self.send_soon(frame)
            bind_token = login.data.get("bind_token")
            if isinstance(bind_token, str):
                await self._present(bind_token)
            await self.serve(self._handlers(), concurrent=False)
        finally:
            await self.finish()
            await self._logout()

    # Login and logout

    async def _login(self, login: Request) -> dict[str, Any]:
        tid = field(login.data, "tid", str)
        timestamp = field(login.data, "ts", int)
        signature = field(login.data, "sig", str)
        versions = login.data.get("version") or {}
        row = await self.ctx.logins.get(tid)
        if row is None:
            raise IVError.of(ErrorCode.IVASrvErr_dst_notexsit, f"no device {tid!r}")
        if abs(timestamp - self.ctx.now()) > LOGIN_SKEW:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_calling_check_token_error,
                "login timestamp is more than 5 minutes off; check the device's clock",
            )
        if not link.verify_login(row.public_key, tid, self.nonce, timestamp, signature):
            raise IVError.of(
                ErrorCode.IVTermErr_msg_calling_check_token_error, "the login proof does not verify"
            )
        if row.disabled:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_calling_dev_is_disable, "the device is disabled"
            )
        self.tid = tid
        #: Whether the device had no owner at login (the login reply's ``bindable``).
        self._bindable = not row.owned
        self._traced = row.traced
        await self.ctx.hub.attach(self)
        self._online = True
        return await self._mark_online(versions if isinstance(versions, dict) else {})

    async def _mark_online(
        self, versions: dict[str, Any], *, only_if_offline: bool = False
    ) -> dict[str, Any]:
        """Mark the device online with this session (the row, its state, the vendor's
        webhook, the apps); ``only_if_offline``: not when another session holds it now.
        The login reply's ProWritable values."""
        now = self.ctx.now()
        sw = versions.get("swVer")
        mark = presence.PresenceMark(
            self.tid,
            self.sid,
            online=True,
            now=now,
            instance=self.ctx.hub.instance_id,
            version=sw if _is_version(sw) else "",
            only_if_offline=only_if_offline,
        )

        def come_online(
            _info: DeviceInfo, model: ThingModel, state: dict[str, Any]
        ) -> dict[str, Any]:
            if mark.marked:
                apply(state, Change("ProReadonly", "_online", {"stVal": 1}), now)
            if versions:
                try:
                    apply(state, model.device_report("ProConst._versionInfo", versions), now)
                except IVError:
                    log.info("device %s reported unusable version info %r", self.tid, versions)
            writable = state.get("ProWritable", {})
            return {
                "writable": {name: obj.get("setVal") for name, obj in writable.items()},
                "confirmed": {name: obj.get("stVal") for name, obj in writable.items()},
            }

        values_now = await self.ctx.things.change(self.tid, come_online, before=mark)
        if mark.marked:
            await self.ctx.hub.push(
                self.tid, "prop", {"path": "ProReadonly._online", "value": {"stVal": 1, "t": now}}
            )
        return dict(values_now)

    async def mark_online_again(self) -> None:
        """The device's row was marked offline while this session lives (its instance
        was taken for dead): mark it online here again, unless it is online already (a
        newer login elsewhere, or marked again by an earlier try)."""
        await self._mark_online({}, only_if_offline=True)

    @property
    def online(self) -> bool:
        """Logged in and not yet logged out."""
        return self._online

    async def _logout(self) -> None:
        if not self._online:
            return
        self._online = False
        # If a step fails (the bus or the database away), the presence sweep of this
        # instance finds the device marked online without a session and converges.
        await self.ctx.hub.detach(self)
        await presence.mark_offline(self.ctx, self.tid, self.sid)

    # Frames from the device

    def _handlers(self) -> dict[str, OpHandler]:
        handlers: dict[str, OpHandler] = {
            "report": self._report,
            "event": self._event,
            "status": self._status,
            "ping": self._ping,
            "log.upload": self._log_upload,
            "bind.present": self._bind_present,
            "ota.query": self._ota_query,
            "vas.status": self._vas_status,
        }
        for op in ("bind.present", "ota.query", "vas.status"):  # the ones no state records
            handlers[op] = self._traced_op(op, handlers[op])
        return handlers

    def _traced_op(self, op: str, handler: OpHandler) -> OpHandler:
        async def run(request: Request) -> dict[str, Any]:
            self._trace("up", op, request.data)
            return await handler(request)

        return run

    def _trace(self, direction: str, op: str, data: Any) -> None:
        """Record a link message of a traced device that changes no state (LogType 7)."""
        if not self._traced or op in _RECORDED_AS_STATE:
            return

        async def write() -> None:
            try:
                async with self.ctx.db.begin() as conn:
                    await log_link_message(conn, self.tid, direction, op, data, now=self.ctx.now())
            except Exception as exc:  # a trace is worth less than the message it traces
                log.info("device %s: a traced message was not recorded: %s", self.tid, exc)

        self.spawn(write())

    async def _log_upload(self, request: Request) -> dict[str, Any]:
        """Lines of the device's own log (sent while it is traced): the newest
        ``MAX_RUN_LOG`` characters are kept for DescribeRunLog."""
        text = field(request.data, "text", str)
        if len(text) > MAX_LOG_UPLOAD:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_user_cmd_param_error,
                f"text: at most {MAX_LOG_UPLOAD} characters per upload",
            )
        if not text:
            return {}
        async with self.ctx.db.begin() as conn:
            await append_run_log(conn, self.tid, text, now=self.ctx.now())
        return {}

    async def _vas_status(self, request: Request) -> dict[str, Any]:
        """Whether a channel's cloud storage is in use (the device records while it is),
        and what it keeps: everything (``pkg_type`` 1) or the video around events (2)."""
        chn = field(request.data, "chn", int, required=False, default=0)
        async with self.ctx.db.read() as conn:
            view = await channel_view(conn, self.tid, chn, self.ctx.now())
        recording = view.status == 1
        return {
            "chn": chn,
            "status": int(view.status),
            "recording": recording,
            "pkg_type": int(view.kind),
        }

    async def _ota_query(self, request: Request) -> dict[str, Any]:
        """The firmware this device is offered ({} when none): version, url, size, md5."""
        current = field(request.data, "current_version", str, required=False)
        language = field(request.data, "language", str, required=False)
        async with self.ctx.db.read() as conn:
            offer = await find_offer(conn, self.tid, current, language)
        return offer or {}

    async def _bind_present(self, request: Request) -> dict[str, Any]:
        """A bind token the device got while already online (wired provisioning)."""
        known = await self._present(field(request.data, "bind_token", str))
        if not known:
            raise IVError.of(ErrorCode.IVNetCfgErr_TokenExpired, "unknown bind token")
        return {}

    async def _present(self, token: str) -> bool:
        """Record the bind token and tell its user's apps; False if it is unknown."""
        async with self.ctx.db.begin() as conn:
            outcome = await present_bind_token(conn, token, self.tid, now=self.ctx.now())
            if outcome is not None:
                notice = {"accessId": outcome.access_id, "code": outcome.code}
                await enqueue(conn, self.tid, "netcfg.result", notice, now=self.ctx.now())
        if outcome is None:
            log.info("device %s presented an unknown bind token", self.tid)
            return False
        event = {"k": "netcfg", "tid": outcome.tid, "code": outcome.code, "msg": outcome.msg}
        await self.ctx.hub.user_event(outcome.access_id, event)
        return True

    async def _report(self, request: Request) -> dict[str, Any]:
        path = field(request.data, "path", str)
        value = request.data.get("value")
        await self.ctx.messaging.report(self.tid, path, value)
        if path.removesuffix(".stVal") == "ProConst._versionInfo" and isinstance(value, dict):
            # A new firmware version (after an upgrade): DescribeDevices' OtaVersion.
            sw = value.get("swVer")
            if _is_version(sw):
                async with self.ctx.db.begin() as conn:
                    changed = await conn.execute(
                        update(devices)
                        .where(devices.c.tid == self.tid, devices.c.ota_version != sw)
                        .values(ota_version=sw)
                    )
                    if changed.rowcount:
                        notice = {"version": sw}
                        await enqueue(conn, self.tid, "ota.result", notice, now=self.ctx.now())
        return {}

    async def _event(self, request: Request) -> dict[str, Any]:
        event_id = field(request.data, "id", str, required=False)
        if event_id is not None and not (event_id.isascii() and event_id.isalnum()):
            raise IVError.of(ErrorCode.IVTermErr_msg_user_cmd_param_error, "id: letters, digits")
        if event_id is not None and len(event_id) > 32:
            raise IVError.of(ErrorCode.IVTermErr_msg_user_cmd_param_error, "id: 32 at most")
        fresh = await self.ctx.messaging.event(
            self.tid, field(request.data, "path", str), request.data.get("value"), event_id=event_id
        )
        self.ctx.metrics.device_events.labels("stored" if fresh else "duplicate").inc()
        return {} if fresh else {"duplicate": True}

    async def _status(self, request: Request) -> dict[str, Any]:
        online = field(request.data, "online", int)
        if online not in (1, 2):
            raise IVError.of(
                ErrorCode.IVTermErr_msg_user_cmd_param_error, "online is 1 (awake) or 2 (asleep)"
            )
        await self.ctx.messaging.report(self.tid, "ProReadonly._online", online)
        return {}

    async def _ping(self, _request: Request) -> dict[str, Any]:
        return {"time": self.ctx.now()}

    # Requests to the device, from anywhere in the cloud

    def on_request(
        self, reply_to: str, rid: str, op: str, data: dict[str, Any], timeout: float
    ) -> None:
        if len(self._inflight) >= MAX_DEVICE_IN_FLIGHT:
            # Refuse the asker, never the device: its session stays up for everyone.
            busy = Outcome(
                ErrorCode.IVAckErr_DeviceBusy,
                {},
                f"the device has {MAX_DEVICE_IN_FLIGHT} requests waiting; try again later",
            )
            self.spawn(self._relay(reply_to, rid, busy))
            return
        self._trace("down", op, data)
        local_id = self._inflight.add((reply_to, rid))
        # Forget the request a little after the asker stops waiting for it.
        asyncio.get_running_loop().call_later(timeout + 1, self._inflight.take, local_id)
        self._to_device(Request(local_id, op, data))

    def on_reply(self, reply: Reply) -> None:
        target = self._inflight.take(reply.id)
        if target is not None:
            self.spawn(self._relay(*target, Outcome(reply.code, reply.data, reply.msg)))

    async def _relay(self, reply_to: str, rid: str, outcome: Outcome) -> None:
        """Send an answer back to the asking instance. With the bus away it is lost: the
        asker's wait ends in its timeout, and the outage is logged once by the bus."""
        try:
            await self.ctx.hub.answer(reply_to, rid, outcome)
        except IVError as exc:
            log.debug("device %s: an answer to %s was not relayed: %s", self.tid, reply_to, exc)

    def on_device_push(self, op: str, data: dict[str, Any]) -> None:
        if op == "trace":  # CreateTraceIds / DeleteTraceIds: the device is told too
            self._traced = bool(data.get("on"))
        self._trace("down", op, data)
        self._to_device(Push(op, data))

    def on_bus_back(self) -> None:
        if self._online:
            self.ctx.messaging.reconcile(self.tid)

    def _to_device(self, frame: Request | Push) -> None:
        if self._held is not None:
            self._held.append(frame)  # the login reply has not gone out yet
        else:
            self.send_soon(frame)

    def on_kick(self, code: int, msg: str) -> None:
        ws_code = (
            link.CLOSE_REPLACED
            if code == ErrorCode.IVTermErr_msg_calling_duplicate_call
            else link.CLOSE_REFUSED
        )
        self.spawn(self.close(ws_code, code, msg))


def _is_version(sw: Any) -> TypeGuard[str]:
    """A reported swVer the cloud records as the device's OtaVersion."""
    return isinstance(sw, str) and len(sw) <= 32
