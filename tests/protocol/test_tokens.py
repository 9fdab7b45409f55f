from __future__ import annotations

import pytest

from iotvideo.protocol.tokens import format_token, hash_token, looks_like_token


def test_tokens() -> None:
    token = format_token("usr", bytes(32))
    assert looks_like_token(token) and token.startswith("usr_")
    assert len(hash_token(token)) == 64 and hash_token(token) != hash_token(token + "x")
    assert not looks_like_token("usr_short") and not looks_like_token("' OR 1=1 --")
    with pytest.raises(ValueError, match="32 random bytes"):
        format_token("usr", b"x")
