"""The device ``Certificate``: what a device needs to log in, as CreateDevices returns it.

It is the base64 of a small JSON object::

    {"v": 1, "tid": "<Tid>", "pid": "<ProductId>", "alg": "Ed25519", "sk": "<base64 seed>"}

``sk`` is the 32-byte Ed25519 private key seed. The cloud hands it out once and keeps only
the public half; the device proves it holds the key by signing a login challenge.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

__all__ = ["CERTIFICATE_VERSION", "DeviceCertificate"]

CERTIFICATE_VERSION = 1
_ALGORITHM = "Ed25519"


@dataclass(frozen=True)
class DeviceCertificate:
    """A device's identity and private key. ``repr`` never shows the key."""

    tid: str
    product_id: str
    private_key: bytes = field(repr=False)

    def to_string(self) -> str:
        """The base64 text CreateDevices returns as ``Certificate``."""
        body = {
            "v": CERTIFICATE_VERSION,
            "tid": self.tid,
            "pid": self.product_id,
            "alg": _ALGORITHM,
            "sk": base64.b64encode(self.private_key).decode("ascii"),
        }
        raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
        return base64.b64encode(raw).decode("ascii")

    @classmethod
    def parse(cls, text: str) -> DeviceCertificate:
        """Read a certificate string; raise :class:`ValueError` saying what is wrong."""
        try:
            body = json.loads(base64.b64decode(text.strip(), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ValueError("the certificate is not base64 of a JSON object") from exc
        if not isinstance(body, dict):
            raise ValueError("the certificate is not base64 of a JSON object")
        if body.get("v") != CERTIFICATE_VERSION or body.get("alg") != _ALGORITHM:
            raise ValueError(f"unsupported certificate version or algorithm: {body.get('v')!r}")
        tid, pid, sk = body.get("tid"), body.get("pid"), body.get("sk")
        if not (isinstance(tid, str) and tid and isinstance(pid, str) and isinstance(sk, str)):
            raise ValueError("the certificate lacks tid, pid or sk")
        try:
            key = base64.b64decode(sk, validate=True)
        except binascii.Error as exc:
            raise ValueError("the certificate's key is not base64") from exc
        if len(key) != 32:
            raise ValueError("the certificate's key is not a 32-byte Ed25519 seed")
        return cls(tid=tid, product_id=pid, private_key=key)
