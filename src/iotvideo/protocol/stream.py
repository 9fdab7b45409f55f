"""Stream tickets: what a ``DescribeStream`` URI carries (``?ticket=...``).

The cloud signs a claim with its Ed25519 stream key: device, channel, protocol, the
AccessId it was asked for (and the hash of the device token it was asked with), and when
it expires. A restream server holds only the public half (``GET /restream/key``): it
checks a ticket before it pulls anything, and cannot mint one. It then signs in to the
cloud with the ticket itself, which grants watching that one device channel, checked
again there (the device still streams, the relation still holds).

The ticket is ``base64url(claim JSON) "." base64url(signature)``, unpadded.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = ["PROTOCOLS", "StreamClaim", "TicketError", "sign_ticket", "verify_ticket"]

#: DescribeStream's protocols we serve (RTMP and HLS-fmp4 are not).
PROTOCOLS = ("RTSP", "HLS")
MAX_TICKET = 2048


class TicketError(ValueError):
    """A ticket that is malformed, forged, altered or expired."""


@dataclass(frozen=True)
class StreamClaim:
    tid: str
    #: The channel ('' for the device's first).
    source: str
    #: RTSP or HLS.
    protocol: str
    access_id: str
    #: UNIX seconds after which the ticket opens nothing new.
    expires: int
    #: sha256 hex of the device token DescribeStream was given ('' with a binding).
    token_hash: str = ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_ticket(key: Ed25519PrivateKey, claim: StreamClaim) -> str:
    body = json.dumps(asdict(claim), separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(body)}.{_b64(key.sign(body))}"


def verify_ticket(public_key: Ed25519PublicKey, ticket: str, *, now: int) -> StreamClaim:
    """The claim of a ticket the key signed and that has not expired (TicketError)."""
    if not isinstance(ticket, str) or len(ticket) > MAX_TICKET or ticket.count(".") != 1:
        raise TicketError("not a stream ticket")
    body_text, signature_text = ticket.split(".")
    try:
        body, signature = _unb64(body_text), _unb64(signature_text)
    except (binascii.Error, ValueError):
        raise TicketError("not a stream ticket") from None
    try:
        public_key.verify(signature, body)
    except InvalidSignature:
        raise TicketError("the ticket's signature does not match (altered or forged)") from None
    try:
        raw = json.loads(body)
        claim = StreamClaim(
            tid=str(raw["tid"]),
            source=str(raw["source"]),
            protocol=str(raw["protocol"]),
            access_id=str(raw["access_id"]),
            expires=int(raw["expires"]),
            token_hash=str(raw.get("token_hash", "")),
        )
    except (ValueError, KeyError, TypeError):
        raise TicketError("not a stream ticket") from None
    if claim.expires < now:
        raise TicketError("the ticket has expired; ask DescribeStream for a new URI")
    return claim
