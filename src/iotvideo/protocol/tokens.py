"""Access-token format: random, prefixed, and stored only as a hash.

A token is ``<prefix>_<43 base64url characters>`` (256 random bits). The cloud stores the
SHA-256 of the whole token; with that much entropy a fast hash is enough, and a lookup by
hash is a primary-key lookup.
"""

from __future__ import annotations

import base64
import hashlib
import re

__all__ = ["TOKEN_RE", "format_token", "hash_token", "looks_like_token"]

TOKEN_RE = re.compile(r"^[a-z]{2,8}_[A-Za-z0-9_-]{43}\Z")


def format_token(prefix: str, random_bytes: bytes) -> str:
    """Build a token from a prefix and 32 random bytes."""
    if len(random_bytes) != 32:
        raise ValueError("a token needs 32 random bytes")
    return f"{prefix}_{base64.urlsafe_b64encode(random_bytes).rstrip(b'=').decode('ascii')}"


def hash_token(token: str) -> str:
    """The hex SHA-256 under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(text: str) -> bool:
    """Whether ``text`` has a token's shape (a cheap check before any lookup)."""
    return TOKEN_RE.match(text) is not None
