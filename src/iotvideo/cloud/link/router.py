"""The link endpoints: ``/link/device`` and ``/link/app`` (WebSocket, JSON text frames).

A cloud holds tens of thousands of these connections, so they skip the framework's
routing, exception and dependency layers (several KB per connection for nothing: the
endpoints take no parameters). :class:`LinkEndpoints` is an ASGI middleware that hands the
two paths straight to their sessions and everything else to the app.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from iotvideo.cloud.link.app_session import AppSession
from iotvideo.cloud.link.device_session import DeviceSession
from iotvideo.cloud.link.session import LinkSession

__all__ = ["LinkEndpoints"]

_SESSIONS: dict[str, type[DeviceSession] | type[AppSession]] = {
    "/link/device": DeviceSession,
    "/link/app": AppSession,
}


class LinkEndpoints:
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
        limits = state.link.limits
        if limits.pending >= limits.max_pending:
            # Too many connections are waiting to log in: refuse before accepting (the
            # client sees HTTP 403 and retries with backoff), so a flood of idle sockets
            # costs a handshake each, not a session.
            await ws.close(code=1013)
            return
        await ws.accept()
        session: LinkSession = session_type(ws, state.link)
        sessions: set[object] = state.link_sessions
        sessions.add(session)
        try:
            await session.run()
        finally:
            sessions.discard(session)
