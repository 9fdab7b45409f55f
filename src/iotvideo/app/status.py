"""The SDK's link status (the seed's IVLinkStatus) as an explicit state machine."""

from __future__ import annotations

from enum import Enum

from iotvideo.protocol.states import IllegalTransition, StateMachine

__all__ = ["IllegalTransition", "LinkStatus", "LinkStatusMachine"]


class LinkStatus(Enum):
    """Where the SDK's link to the cloud stands. Use the SDK only while ``ONLINE``."""

    UNREGISTERED = "unregistered"  # register() not called yet, or unregister() called
    CONNECTING = "connecting"  # connecting or logging in
    ONLINE = "online"
    OFFLINE = "offline"  # lost; reconnecting by itself
    TOKEN_FAILED = "token_failed"  # noqa: S105 - the token was refused, revoked or expired


_MOVES: dict[LinkStatus, frozenset[LinkStatus]] = {
    LinkStatus.UNREGISTERED: frozenset({LinkStatus.CONNECTING}),
    LinkStatus.CONNECTING: frozenset(
        {LinkStatus.ONLINE, LinkStatus.OFFLINE, LinkStatus.TOKEN_FAILED, LinkStatus.UNREGISTERED}
    ),
    LinkStatus.ONLINE: frozenset(
        {
            LinkStatus.OFFLINE,
            LinkStatus.TOKEN_FAILED,
            LinkStatus.UNREGISTERED,
            LinkStatus.CONNECTING,
        }
    ),
    LinkStatus.OFFLINE: frozenset({LinkStatus.CONNECTING, LinkStatus.UNREGISTERED}),
    LinkStatus.TOKEN_FAILED: frozenset({LinkStatus.CONNECTING, LinkStatus.UNREGISTERED}),
}


class LinkStatusMachine(StateMachine[LinkStatus]):
    def __init__(self) -> None:
        super().__init__("link status", _MOVES, LinkStatus.UNREGISTERED)

    @property
    def status(self) -> LinkStatus:
        return self.state
