"""TURN REST API credentials: what coturn's use-auth-secret checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

from iotvideo.cloud.settings import CloudSettings
from iotvideo.cloud.turn import ice_servers, turn_credentials


def test_credentials_expire_and_are_signed_with_the_secret() -> None:
    username, password = turn_credentials("s3cret", "user1", now=1_000, ttl=600)
    assert username == "1600:user1"
    expected = hmac.new(b"s3cret", b"1600:user1", hashlib.sha1).digest()
    assert base64.b64decode(password) == expected


def test_ice_servers_give_stun_as_is_and_turn_with_credentials(tmp_path: Path) -> None:
    settings = CloudSettings(
        data=tmp_path,
        ice_urls=["stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp"],
        turn_secret="k",
        turn_ttl=60,
    )
    stun, turn = ice_servers(settings, "peer", now=10)
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert turn["urls"] == ["turn:127.0.0.1:3478?transport=udp"]
    assert turn["username"] == "70:peer"
    assert ice_servers(CloudSettings(data=tmp_path), "peer", now=10) == []
