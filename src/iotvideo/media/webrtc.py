"""Every adaptation of aiortc and aioice the project makes, in one place, each with why.

Import WebRTC things from here, not from aiortc directly, so the adaptations are in force.
"""

from __future__ import annotations

from collections.abc import Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

__all__ = ["host_addresses", "rtc_configuration", "set_host_addresses"]

_original_get_host_addresses = aioice.ice.get_host_addresses
_host_addresses: list[str] | None = None


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    # Why: aioice never offers 127.0.0.1 as a host candidate, so two peers whose only
    # common network is loopback (tests, a device and an app on one box) cannot connect;
    # and a deployment may want ICE on chosen interfaces only. When addresses are set,
    # they are the host candidates; otherwise aioice's own choice stands.
    if _host_addresses is None:
        return _original_get_host_addresses(use_ipv4, use_ipv6)
    return [a for a in _host_addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


aioice.ice.get_host_addresses = _get_host_addresses


def set_host_addresses(addresses: Sequence[str] | None) -> None:
    """Offer exactly these host candidates (e.g. ``["127.0.0.1"]``); None: all interfaces
    but loopback, aioice's default."""
    global _host_addresses
    _host_addresses = list(addresses) if addresses is not None else None


def host_addresses() -> list[str] | None:
    """The host candidates in force (None: aioice's default)."""
    return None if _host_addresses is None else list(_host_addresses)


def rtc_configuration(ice_servers: Sequence[RTCIceServer] = ()) -> RTCConfiguration:
    """An explicit ICE server list. Why: with no configuration aiortc adds a public STUN
    server, which a self-hosted platform (and its tests) must never contact; the cloud
    hands out its own STUN/TURN servers and credentials."""
    return RTCConfiguration(iceServers=list(ice_servers))
