"""Provisioning formats, without I/O: DNS-SD records, the QR payload, sealed Wi-Fi settings.

LAN and AP provisioning talk to the device's local HTTP endpoint. The Wi-Fi password never
crosses the LAN in clear, and the app only talks to the device it means:

1. ``GET /iotvideo/provision/hello``: the device makes a fresh X25519 key and answers
   ``{"v", "tid", "pid", "pub", "nonce", "sig"}``; ``sig`` is an Ed25519 signature, with
   the device's identity key (its Certificate), of :func:`hello_message`.
2. The app checks ``sig`` against the device's public key, which it gets from the cloud
   (so a stranger on the LAN cannot pose as the camera), makes its own X25519 key, derives
   an AES-256-GCM key with HKDF-SHA256, and seals the settings (:func:`seal`).
3. ``POST /iotvideo/provision/wifi`` with ``{"nonce", "pub", "iv", "data"}``; the device
   opens it (:func:`unseal`) with the key of that hello, once.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "HELLO_PATH",
    "SERVICE_TYPE",
    "WIFI_PATH",
    "Hello",
    "Sealed",
    "WifiConfig",
    "hello_message",
    "make_hello",
    "parse_qr_payload",
    "qr_payload",
    "seal",
    "unseal",
    "verify_hello",
]

#: The DNS-SD service devices in provisioning mode announce (TXT: v, tid, pid, bindable, mode).
SERVICE_TYPE = "_iotvideo._tcp.local."
HELLO_PATH = "/iotvideo/provision/hello"
WIFI_PATH = "/iotvideo/provision/wifi"
_INFO = b"iotvideo-provision-v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError(f"{what} must be base64 text") from None


@dataclass(frozen=True)
class WifiConfig:
    """What a device needs to join the network and prove who provisioned it.

    An empty ``ssid`` means "keep the network you are on" (wired devices): only the bind
    token is passed.
    """

    ssid: str
    password: str
    bind_token: str

    def __post_init__(self) -> None:
        if len(self.ssid.encode()) > 32:
            raise ValueError("an SSID is at most 32 bytes")
        if len(self.password) > 63:
            raise ValueError("a Wi-Fi password is at most 63 characters")
        if not 0 < len(self.bind_token) <= 128:
            raise ValueError("the bind token is missing or too long")

    def to_json(self) -> dict[str, Any]:
        return {"v": 1, "s": self.ssid, "p": self.password, "t": self.bind_token}

    @classmethod
    def from_json(cls, body: Any) -> WifiConfig:
        if not isinstance(body, dict) or body.get("v") != 1:
            raise ValueError("not an iotvideo Wi-Fi configuration (v1)")
        ssid, password, token = body.get("s"), body.get("p"), body.get("t")
        if not (isinstance(ssid, str) and isinstance(password, str) and isinstance(token, str)):
            raise ValueError("the configuration lacks s, p or t")
        return cls(ssid, password, token)


def qr_payload(config: WifiConfig) -> str:
    """The text of the provisioning QR code: compact JSON, so the code stays small."""
    return json.dumps(config.to_json(), separators=(",", ":"), ensure_ascii=False)


def parse_qr_payload(text: str) -> WifiConfig:
    try:
        body = json.loads(text)
    except ValueError:
        raise ValueError("the QR code does not hold an iotvideo configuration") from None
    return WifiConfig.from_json(body)


# The local endpoint's key agreement


def hello_message(tid: str, pid: str, pub: str, nonce: str) -> bytes:
    return b"\n".join([_INFO, tid.encode(), pid.encode(), pub.encode(), nonce.encode()])


@dataclass(frozen=True)
class Hello:
    tid: str
    pid: str
    pub: str
    nonce: str
    sig: str

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "tid": self.tid,
            "pid": self.pid,
            "pub": self.pub,
            "nonce": self.nonce,
            "sig": self.sig,
        }

    @classmethod
    def from_json(cls, body: Any) -> Hello:
        if not isinstance(body, dict) or body.get("v") != 1:
            raise ValueError("not an iotvideo provisioning hello (v1)")
        fields = [body.get(k) for k in ("tid", "pid", "pub", "nonce", "sig")]
        texts = [f for f in fields if isinstance(f, str) and f]
        if len(texts) != len(fields):
            raise ValueError("the hello lacks a field")
        return cls(*texts)


def make_hello(identity_seed: bytes, tid: str, pid: str) -> tuple[X25519PrivateKey, Hello]:
    """The device's side: a fresh X25519 key and the signed hello that announces it."""
    key = X25519PrivateKey.generate()
    pub = _b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    nonce = _b64(os.urandom(16))
    signer = Ed25519PrivateKey.from_private_bytes(identity_seed)
    sig = _b64(signer.sign(hello_message(tid, pid, pub, nonce)))
    return key, Hello(tid, pid, pub, nonce, sig)


def verify_hello(hello: Hello, device_public_key: bytes) -> bool:
    """The app's side: is this hello signed by the device with that identity key?"""
    try:
        verifier = Ed25519PublicKey.from_public_bytes(device_public_key)
        verifier.verify(
            _unb64(hello.sig, "sig"), hello_message(hello.tid, hello.pid, hello.pub, hello.nonce)
        )
    except (ValueError, InvalidSignature):
        return False
    return True


def _key(private: X25519PrivateKey, peer_pub: bytes, hello: Hello) -> AESGCM:
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_pub))
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_unb64(hello.nonce, "nonce"),
        info=_INFO + hello.tid.encode(),
    )
    return AESGCM(hkdf.derive(shared))


@dataclass(frozen=True)
class Sealed:
    """Sealed settings as the app POSTs them."""

    nonce: str
    pub: str
    iv: str
    data: str

    def to_json(self) -> dict[str, Any]:
        return {"nonce": self.nonce, "pub": self.pub, "iv": self.iv, "data": self.data}

    @classmethod
    def from_json(cls, body: Any) -> Sealed:
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        fields = [body.get(k) for k in ("nonce", "pub", "iv", "data")]
        texts = [f for f in fields if isinstance(f, str) and f]
        if len(texts) != len(fields):
            raise ValueError("expected nonce, pub, iv and data")
        return cls(*texts)


def seal(hello: Hello, config: WifiConfig) -> Sealed:
    """The app's side: encrypt the settings for the device that sent ``hello``."""
    mine = X25519PrivateKey.generate()
    aead = _key(mine, _unb64(hello.pub, "pub"), hello)
    iv = os.urandom(12)
    data = aead.encrypt(
        iv, json.dumps(config.to_json()).encode(), (hello.tid + hello.nonce).encode()
    )
    pub = mine.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return Sealed(hello.nonce, _b64(pub), _b64(iv), _b64(data))


def unseal(private: X25519PrivateKey, hello: Hello, sealed: Sealed) -> WifiConfig:
    """The device's side: open settings sealed for its hello; ValueError if they are not."""
    try:
        aead = _key(private, _unb64(sealed.pub, "pub"), hello)
        plain = aead.decrypt(
            _unb64(sealed.iv, "iv"), _unb64(sealed.data, "data"), (hello.tid + hello.nonce).encode()
        )
    except (InvalidTag, ValueError):
        raise ValueError("the settings were not sealed for this device's key") from None
    return WifiConfig.from_json(json.loads(plain))
