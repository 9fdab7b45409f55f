"""The link endpoints: ``/link/device`` and ``/link/app`` (WebSocket, JSON text frames)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from iotvideo.cloud.link.app_session import AppSession
from iotvideo.cloud.link.device_session import DeviceSession
from iotvideo.cloud.link.session import LinkSession

__all__ = ["router"]

router = APIRouter()


async def _run(ws: WebSocket, session_type: type[DeviceSession] | type[AppSession]) -> None:
    await ws.accept()
    session: LinkSession = session_type(ws, ws.app.state.link)
    sessions: set[object] = ws.app.state.link_sessions
    sessions.add(session)
    try:
        await session.run()
    finally:
        sessions.discard(session)


@router.websocket("/link/device")
async def device_link(ws: WebSocket) -> None:
    """A device logs in with its Tid and a signature of the cloud's nonce."""
    await _run(ws, DeviceSession)


@router.websocket("/link/app")
async def app_link(ws: WebSocket) -> None:
    """An app logs in with AccessId and AccessToken."""
    await _run(ws, AppSession)
