"""The stream key that signs DescribeStream URIs, and ``GET /restream/key``: its public
half, for restream servers to check the URIs they are handed (protocol/stream.py)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["public_key_text", "router", "stream_key"]

router = APIRouter()


@functools.lru_cache(maxsize=8)
def stream_key(data: Path, configured: str | None) -> Ed25519PrivateKey:
    """The setting (base64 of a 32-byte seed), else a key kept in the data directory
    (``stream.key``, shared by instances sharing it). ValueError for a bad setting."""
    if configured:
        try:
            seed = base64.b64decode(configured, validate=True)
        except binascii.Error:
            seed = b""
        if len(seed) != 32:
            raise ValueError("IOTVIDEO_STREAM_KEY: base64 of a 32-byte Ed25519 seed")
        return Ed25519PrivateKey.from_private_bytes(seed)
    path = data / "stream.key"
    with contextlib.suppress(FileExistsError):  # readable by the cloud's user alone
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode())
    seed = base64.b64decode(path.read_text().strip())
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


@router.get("/restream/key", summary="The public key of DescribeStream URIs")
async def restream_key(request: Request) -> JSONResponse:
    """``{"alg": "Ed25519", "key": "<base64>"}``: what a restream server checks the
    ``ticket`` of a DescribeStream URI with. Public: it mints nothing."""
    settings = request.app.state.settings
    key = stream_key(settings.data, settings.stream_key)
    return JSONResponse({"alg": "Ed25519", "key": public_key_text(key)})
