"""TC3-HMAC-SHA256 request signatures (Tencent Cloud API 3.0), without I/O.

The vendor API accepts requests signed exactly as the official ``tencentcloud-sdk-python``
client signs them (``AbstractClient._get_tc3_signature``)::

    CanonicalRequest = Method \\n URI \\n Query \\n CanonicalHeaders \\n SignedHeaders
                       \\n SHA256(body)
    StringToSign     = "TC3-HMAC-SHA256" \\n Timestamp \\n Date/service/tc3_request \\n SHA256(CR)
    SigningKey       = HMAC(HMAC(HMAC("TC3" + SecretKey, Date), service), "tc3_request")
    Signature        = hex(HMAC(SigningKey, StringToSign))

``Date`` is the UTC day of ``Timestamp`` (``YYYY-MM-DD``). For GET requests the query string
is signed and the body is empty; for POST the query string is empty.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ALGORITHM",
    "SERVICE",
    "Authorization",
    "canonical_request",
    "sign",
    "sign_request",
    "signature",
    "string_to_sign",
    "utc_date",
]

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "iotvideo"

_AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256\s+"
    r"Credential=(?P<id>[^/\s,]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[A-Za-z0-9_-]+)/tc3_request\s*,\s*"
    r"SignedHeaders=(?P<headers>[a-z0-9;_-]+)\s*,\s*"
    r"Signature=(?P<sig>[0-9a-f]{64})\s*$"
)


@dataclass(frozen=True)
class Authorization:
    """The parsed ``Authorization`` header of a TC3 request."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @classmethod
    def parse(cls, header: str) -> Authorization:
        """Parse the header; raise :class:`ValueError` saying what is wrong with it."""
        match = _AUTH_RE.match(header.strip())
        if match is None:
            raise ValueError(
                "Authorization must be 'TC3-HMAC-SHA256 Credential=<SecretId>/<date>/<service>/"
                "tc3_request, SignedHeaders=<headers>, Signature=<64 hex digits>'"
            )
        signed = tuple(match["headers"].split(";"))
        if "content-type" not in signed or "host" not in signed:
            raise ValueError("SignedHeaders must include content-type and host")
        return cls(match["id"], match["date"], match["service"], signed, match["sig"])

    def __str__(self) -> str:
        return (
            f"{ALGORITHM} Credential={self.secret_id}/{self.date}/{self.service}/tc3_request, "
            f"SignedHeaders={';'.join(self.signed_headers)}, Signature={self.signature}"
        )


def utc_date(timestamp: int) -> str:
    """The ``YYYY-MM-DD`` UTC day that TC3 puts in the credential scope."""
    t = time.gmtime(timestamp)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    payload: bytes,
) -> str:
    """The canonical request; ``headers`` maps lower-case names to values as sent."""
    canonical_headers = "".join(
        f"{name}:{headers.get(name, '').strip()}\n" for name in signed_headers
    )
    return "\n".join(
        (
            method.upper(),
            uri,
            query,
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(payload).hexdigest(),
        )
    )


def string_to_sign(timestamp: int, date: str, service: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{digest}"


def signature(secret_key: str, date: str, service: str, to_sign: str) -> str:
    """Hex HMAC-SHA256 of ``to_sign`` with the key derived from ``secret_key``."""
    k_date = hmac.new(("TC3" + secret_key).encode("utf-8"), date.encode("utf-8"), hashlib.sha256)
    k_service = hmac.new(k_date.digest(), service.encode("utf-8"), hashlib.sha256)
    k_signing = hmac.new(k_service.digest(), b"tc3_request", hashlib.sha256)
    return hmac.new(k_signing.digest(), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(
    secret_key: str,
    *,
    timestamp: int,
    service: str,
    method: str,
    uri: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    payload: bytes,
) -> str:
    """The signature of a request, from its parts (server and client side alike)."""
    date = utc_date(timestamp)
    canonical = canonical_request(method, uri, query, headers, signed_headers, payload)
    return signature(secret_key, date, service, string_to_sign(timestamp, date, service, canonical))


def sign_request(
    secret_id: str,
    secret_key: str,
    *,
    action: str,
    payload: bytes,
    host: str,
    timestamp: int,
    version: str = "2019-11-26",
    content_type: str = "application/json",
    service: str = SERVICE,
    sign_action: bool = False,
) -> dict[str, str]:
    """Headers for a signed ``POST /`` request, as the official client builds them.

    ``sign_action`` also signs ``X-TC-Action`` (the official client does not), so that the
    request cannot be sent again as another action.
    """
    signed_headers: tuple[str, ...] = ("content-type", "host")
    headers = {"content-type": content_type, "host": host}
    if sign_action:
        signed_headers += ("x-tc-action",)
        headers["x-tc-action"] = action.lower()
    sig = sign(
        secret_key,
        timestamp=timestamp,
        service=service,
        method="POST",
        uri="/",
        query="",
        headers=headers,
        signed_headers=signed_headers,
        payload=payload,
    )
    auth = Authorization(secret_id, utc_date(timestamp), service, signed_headers, sig)
    return {
        "Authorization": str(auth),
        "Content-Type": content_type,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": version,
    }
