"""Short-lived TURN credentials by the TURN REST API scheme (coturn's ``use-auth-secret``).

The username is ``<expiry unix time>:<who>`` and the password is
``base64(HMAC-SHA1(secret, username))``: the TURN server checks both with the secret it
shares with the cloud, and refuses them after the expiry, so nothing is stored per peer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from iotvideo.cloud.settings import CloudSettings

__all__ = ["ice_servers", "turn_credentials"]


def turn_credentials(secret: str, who: str, *, now: int, ttl: int) -> tuple[str, str]:
    """(username, credential) valid until ``now + ttl``."""
    username = f"{now + ttl}:{who}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(settings: CloudSettings, who: str, *, now: int) -> list[dict[str, Any]]:
    """The ``ice_servers`` list for one peer: STUN URLs as they are, TURN ones with
    credentials (when a secret is set)."""
    stun = [u for u in settings.ice_urls if u.startswith(("stun:", "stuns:"))]
    turn = [u for u in settings.ice_urls if u.startswith(("turn:", "turns:"))]
    servers: list[dict[str, Any]] = []
    if stun:
        servers.append({"urls": stun})
    if turn and settings.turn_secret:
        username, credential = turn_credentials(
            settings.turn_secret, who, now=now, ttl=settings.turn_ttl
        )
        servers.append({"urls": turn, "username": username, "credential": credential})
    return servers
