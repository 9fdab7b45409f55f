"""The link endpoints: ``/link/device`` and ``/link/app`` (WebSocket, JSON text frames).

A cloud holds tens of thousands of these connections, so under ``iotvideo cloud run``
they bypass ASGI altogether: :class:`LinkProtocol` is uvicorn's WebSocket protocol
class, and serves the two paths on the lean wire of :mod:`iotvideo.cloud.link.wire`.
Under any other ASGI server, :class:`LinkEndpoints` (an ASGI middleware ahead of all of
FastAPI's layers, which cost several KB per connection for nothing: the endpoints take no
parameters) hands the two paths straight to their sessions. Everything else goes to the app.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from iotvideo.cloud.link.app_session import AppSession
from iotvideo.cloud.link.context import LinkContext
from iotvideo.cloud.link.device_session import DeviceSession
from iotvideo.cloud.link.session import LinkSession
from iotvideo.cloud.link.wire import AsgiLinkSocket, LinkWire

__all__ = ["LinkEndpoints", "LinkProtocol"]

log = logging.getLogger("iotvideo.cloud.link")

_SESSIONS: dict[str, type[DeviceSession] | type[AppSession]] = {
    "/link/device": DeviceSession,
    "/link/app": AppSession,
}


def _may_wait(link: LinkContext) -> bool:
    """Whether one more connection may wait for its login. Refused before the handshake
    (the client sees HTTP 403 and retries with backoff), a flood of idle sockets costs
    a handshake each, not a session."""
    return link.limits.pending < link.limits.max_pending


async def _serve(session: LinkSession, sessions: set[object]) -> None:
    sessions.add(session)
    try:
        await session.run()
    finally:
        sessions.discard(session)


class LinkEndpoints:
    """The link endpoints as an ASGI middleware (the app under a server other than
    ``iotvideo cloud run``'s)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_type = (
            _SESSIONS.get(scope.get("path", "")) if scope["type"] == "websocket" else None
        )
        if session_type is None:
            await self.app(scope, receive, send)
            return
        ws = WebSocket(scope, receive, send)
        state = scope["app"].state
        if not _may_wait(state.link):
            await ws.close(code=1013)
            return
        await ws.accept()
        await _serve(session_type(AsgiLinkSocket(ws), state.link), state.link_sessions)


class LinkProtocol(LinkWire):
    """uvicorn's WebSocket protocol class (``ws=`` in its config): the link paths on the
    lean wire, any other WebSocket path to uvicorn's own protocol and the ASGI app."""

    __slots__ = ()

    def _state(self) -> Any:
        """The app's state once it has started (None before, or for another app)."""
        state = getattr(self._config.app, "state", None)
        return state if getattr(state, "link_sessions", None) is not None else None

    def route(self, path: bytes) -> str | None:
        state = self._state()
        if state is None or path.decode("latin-1") not in _SESSIONS:
            return None
        return "" if _may_wait(state.link) else "403 Forbidden"

    def opened(self, path: bytes) -> None:
        state = self._state()
        session_type = _SESSIONS[path.decode("latin-1")]
        session = session_type(self, state.link)
        task = asyncio.get_running_loop().create_task(self._run(session, state.link_sessions))
        tasks = self._server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _run(self, session: LinkSession, sessions: set[object]) -> None:
        try:
            await _serve(session, sessions)
        except Exception:
            log.exception("%s session %s failed", session.kind, session.sid)
            self.abort()
            return
        # A session that ends without closing (it always closes: belt and braces).
        await self.close(1000, "")
