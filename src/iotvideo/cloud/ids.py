"""Identifiers and secrets the cloud issues. All from :mod:`secrets`."""

from __future__ import annotations

import secrets
import string

from iotvideo.protocol.tokens import format_token

__all__ = [
    "access_id",
    "alarm_id",
    "new_token",
    "order_id",
    "product_id",
    "secret_id",
    "secret_key",
    "service_id",
    "terminal_id",
    "tid",
    "vendor_id",
]

_UPPER_ALNUM = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits


def _pick(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _numeric() -> str:
    # 19-digit decimal strings, the shape the reference platform uses for AccessId.
    return str(secrets.randbelow(9 * 10**18) + 10**18)


def vendor_id() -> str:
    return "vnd" + secrets.token_hex(6)


def secret_id() -> str:
    return "AKID" + _pick(_ALNUM, 32)


def secret_key() -> str:
    return _pick(_ALNUM, 32)


def product_id() -> str:
    return _pick(_UPPER_ALNUM, 10)


def tid() -> str:
    return secrets.token_hex(12).upper()


def access_id() -> str:
    return _numeric()


def terminal_id() -> str:
    return _numeric()


def new_token(kind: str) -> str:
    """A fresh access token whose prefix says what it grants (``usr``, ``dev``...)."""
    return format_token(kind, secrets.token_bytes(32))


def service_id() -> str:
    """A cloud-storage service (CreateStorageService's ServiceId)."""
    return "cs" + _pick(_UPPER_ALNUM, 16)


def order_id() -> str:
    """A cloud-storage order."""
    return "ord" + _pick(_UPPER_ALNUM, 16)


def alarm_id() -> str:
    """A device event (the seed's alarmId)."""
    return "evt" + _pick(_ALNUM, 20)
