"""The link protocol's wire format, without I/O: frames, login proofs, reconnect delays.

Every frame is one JSON object in one WebSocket text message:

- request ``{"id": 7, "op": "prop.read", "data": {...}}`` (either side may send them);
- reply   ``{"id": 7, "code": 0, "data": {...}}`` or ``{"id": 7, "code": 8000, "msg": "..."}``;
- push    ``{"op": "event", "data": {...}}`` (no reply).

See ``docs/protocol.md`` for the operations and the login handshake.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from iotvideo.protocol import jsontext
from iotvideo.protocol.errors import ErrorCode

__all__ = [
    "CLOCK_TOLERANCE",
    "MAX_DATA_SIZE",
    "MAX_FRAME_BYTES",
    "NONCE_PATTERN",
    "PROTOCOL_VERSION",
    "Backoff",
    "FrameError",
    "Purpose",
    "Push",
    "Reply",
    "Request",
    "clock_offset",
    "decode_data",
    "encode_data",
    "login_message",
    "parse_frame",
    "sign",
    "sign_login",
    "signed_message",
    "verify",
    "verify_login",
]

PROTOCOL_VERSION = 1
#: Frames above this are answered with 21008 (the WebSocket itself allows up to 1 MiB).
MAX_FRAME_BYTES = 64 * 1024
#: Passthrough data (send_data) per message, before base64.
MAX_DATA_SIZE = 30000
#: WebSocket close codes the cloud uses (4000-4999 are the application's).
CLOSE_REFUSED = 4001  # login refused or session ended for good: do not reconnect
CLOSE_REPLACED = 4002  # the same device or terminal logged in elsewhere
CLOSE_RETRY = 4003  # ended by the cloud, reconnect later (e.g. shutting down)
#: A device clock within this many seconds of the cloud's is left alone: NTP keeps it
#: closer than one reading of the cloud's clock over the network does.
CLOCK_TOLERANCE = 1.0


def clock_offset(cloud_time: float, local_time: float, within: float = 0.0) -> float:
    """Seconds to add to a device's clock to read the cloud's, from a reading of the
    cloud's clock (``hello``'s ``time_ms``/1000, an HTTP ``Date``) that arrived at
    ``local_time`` by the device's clock and was taken at most ``within`` s before (the
    time on the way: a busy cloud's ``hello`` may arrive a second after it was written).
    0 when the clocks may agree within :data:`CLOCK_TOLERANCE`; else the middle of the
    offsets the reading allows.

    >>> clock_offset(1_800_000_600.0, 1_800_000_000.0)
    600.0
    >>> clock_offset(1_800_000_000.4, 1_800_000_000.0)
    0.0
    >>> clock_offset(1_800_000_000.0, 1_800_000_001.5, within=1.0)  # 1.5 s on the way
    0.0
    >>> clock_offset(1_800_000_600.0, 1_800_000_000.0, within=2.0)
    601.0
    """
    earliest = cloud_time - local_time  # taken as it arrived
    latest = earliest + within  # taken as the request went out
    if earliest - CLOCK_TOLERANCE <= 0.0 <= latest + CLOCK_TOLERANCE:
        return 0.0
    return earliest + within / 2


class FrameError(Exception):
    """A frame that is not well formed. ``id`` is the request's id when it could be read."""

    def __init__(self, code: ErrorCode, message: str, id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id


@dataclass(frozen=True)
class Request:
    id: int
    op: str
    data: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        return _dumps({"id": self.id, "op": self.op, "data": self.data})


@dataclass(frozen=True)
class Reply:
    id: int
    code: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    msg: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0

    def encode(self) -> str:
        body: dict[str, Any] = {"id": self.id, "code": self.code}
        if self.data:
            body["data"] = self.data
        if self.msg:
            body["msg"] = self.msg
        return _dumps(body)


@dataclass(frozen=True)
class Push:
    op: str
    data: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        return _dumps({"op": self.op, "data": self.data})


Frame = Request | Reply | Push


def _dumps(body: dict[str, Any]) -> str:
    # allow_nan=False: never put NaN or Infinity on the wire (no JSON parser must take it).
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_frame(text: str | bytes) -> Frame:
    """Read one frame; raise :class:`FrameError` (20102, 21008 or 20143) if it is not one."""
    size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
    if size > MAX_FRAME_BYTES:
        raise FrameError(
            ErrorCode.IVMessageError_ExceedsMaxLength,
            f"frame larger than {MAX_FRAME_BYTES} bytes",
            _peek_id(text),
        )
    try:
        body = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise FrameError(
            ErrorCode.IVTermErr_msg_gdm_handle_parse_json_fail, "frame is not JSON", _peek_id(text)
        ) from None
    try:
        jsontext.check(body)
    except ValueError as exc:
        raise FrameError(
            ErrorCode.IVTermErr_msg_user_cmd_param_error, f"frame: {exc}", _peek_id(text)
        ) from None
    if not isinstance(body, dict):
        raise FrameError(
            ErrorCode.IVTermErr_msg_gdm_handle_parse_json_fail, "frame is not an object"
        )
    raw_id, op, data = body.get("id"), body.get("op"), body.get("data", {})
    frame_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
    if raw_id is not None and (frame_id is None or not 0 < frame_id < 2**53):
        raise FrameError(
            ErrorCode.IVTermErr_msg_user_cmd_param_error, "id must be a positive integer"
        )
    if not isinstance(data, dict):
        raise FrameError(
            ErrorCode.IVTermErr_msg_user_cmd_param_error, "data must be an object", frame_id
        )
    if "code" in body:
        code, msg = body["code"], body.get("msg", "")
        if (
            frame_id is None
            or not isinstance(code, int)
            or isinstance(code, bool)
            or not isinstance(msg, str)
        ):
            raise FrameError(
                ErrorCode.IVTermErr_msg_user_cmd_param_error, "malformed reply", frame_id
            )
        return Reply(frame_id, code, data, msg)
    if not isinstance(op, str) or not op or len(op) > 32:
        raise FrameError(
            ErrorCode.IVTermErr_msg_user_cmd_param_error, "op must be a short string", frame_id
        )
    if frame_id is None:
        return Push(op, data)
    return Request(frame_id, op, data)


_ID_AT_START = re.compile(r'^\s*\{\s*"id"\s*:\s*(\d{1,15})\s*[,}]')


def _peek_id(text: str | bytes) -> int | None:
    """The id of an oversized request, read from its start without parsing it whole."""
    head = text[:64] if isinstance(text, str) else text[:64].decode("utf-8", "replace")
    match = _ID_AT_START.match(head)
    return int(match[1]) if match else None


def encode_data(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_data(text: Any) -> bytes:
    """Base64 passthrough data; raise :class:`ValueError` if it is not."""
    if not isinstance(text, str):
        raise ValueError("data must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("data must be a base64 string") from None


#: The cloud's login nonces: what a device agrees to sign (the cloud sends 32 base64url
#: characters; anything else, such as text made to look like another signed message, is
#: refused before signing).
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}\Z")


class Purpose(StrEnum):
    """Every message a device signs starts with its purpose: a signature made for one
    can never pass as another (a login nonce crafted to look like an upload, say)."""

    LOGIN = "iotvideo-login-v1"
    UPLOAD = "iotvideo-upload-v1"


def signed_message(purpose: Purpose, tid: str, subject: str, timestamp: int) -> bytes:
    """``<purpose>\n<tid>\n<subject>\n<timestamp>``, UTF-8."""
    return f"{purpose.value}\n{tid}\n{subject}\n{timestamp}".encode()


def login_message(tid: str, nonce: str, timestamp: int) -> bytes:
    """What a device signs to log in: bound to the cloud's nonce, so it cannot be replayed."""
    return signed_message(Purpose.LOGIN, tid, nonce, timestamp)


def sign(private_seed: bytes, message: bytes) -> str:
    key = Ed25519PrivateKey.from_private_bytes(private_seed)
    return base64.b64encode(key.sign(message)).decode("ascii")


def verify(public_key: bytes, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is ``public_key``'s Ed25519 signature of ``message``."""
    try:
        sig = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    return _verify(public_key, message, sig)


def _verify_openssl(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (ValueError, InvalidSignature):
        return False
    return True


try:
    # libsodium verifies in 40 us where OpenSSL takes 100 (a seventh of a device login's
    # CPU in a login storm); the cloud installs it, a device may not.
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey
except ImportError:  # pragma: no cover - the device SDK without iotvideo[cloud]
    _verify = _verify_openssl
else:

    def _verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
        try:
            VerifyKey(public_key).verify(message, signature)
        except (ValueError, TypeError, BadSignatureError):
            return False
        return True


def sign_login(private_seed: bytes, tid: str, nonce: str, timestamp: int) -> str:
    """Sign the cloud's login nonce; :class:`ValueError` if it is not a nonce."""
    if not NONCE_PATTERN.match(nonce):
        raise ValueError("the cloud's nonce is not 16-128 base64url characters")
    return sign(private_seed, login_message(tid, nonce, timestamp))


def verify_login(public_key: bytes, tid: str, nonce: str, timestamp: int, signature: str) -> bool:
    return verify(public_key, login_message(tid, nonce, timestamp), signature)


@dataclass
class Backoff:
    """Reconnect delays: exponential from ``base`` up to ``cap``, with full jitter.

    The n-th delay is uniform in [0, min(cap, base * 2**n)] (at least ``floor``), so that
    thousands of clients cut off at once do not come back at once. ``reset()`` after a
    successful login.
    """

    base: float = 0.5
    cap: float = 30.0
    floor: float = 0.05
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return max(self.floor, self.rng.uniform(0, ceiling))

    def reset(self) -> None:
        self.attempt = 0
