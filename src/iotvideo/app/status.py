"""The SDK's link status (the seed's IVLinkStatus) as an explicit state machine."""

from __future__ import annotations

from enum import Enum

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


class IllegalTransition(RuntimeError):
    """A move the link status machine does not allow (a bug in the SDK)."""


class LinkStatusMachine:
    def __init__(self) -> None:
        self.status = LinkStatus.UNREGISTERED

    def can(self, to: LinkStatus) -> bool:
        return to is self.status or to in _MOVES[self.status]

    def move(self, to: LinkStatus) -> bool:
        """Move to ``to``; True if the status changed. Raise on an illegal move."""
        if to is self.status:
            return False
        if to not in _MOVES[self.status]:
            raise IllegalTransition(f"link status cannot go from {self.status.value} to {to.value}")
        self.status = to
        return True
