"""The provisioning formats, sans-IO: QR payloads, signed hellos, sealed settings."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from iotvideo.protocol.provision import (
    Hello,
    Sealed,
    WifiConfig,
    make_hello,
    parse_qr_payload,
    qr_payload,
    seal,
    unseal,
    verify_hello,
)

SEED = bytes(range(32))
PUBLIC = (
    Ed25519PrivateKey.from_private_bytes(SEED)
    .public_key()
    .public_bytes(Encoding.Raw, PublicFormat.Raw)
)
TOKEN = "bt_" + "x" * 43

ssids = st.text(max_size=32).filter(lambda s: len(s.encode()) <= 32)
passwords = st.text(max_size=63)
tokens = st.text(min_size=1, max_size=128)


@given(ssids, passwords, tokens)
def test_qr_payload_round_trips(ssid: str, password: str, token: str) -> None:
    config = WifiConfig(ssid, password, token)
    assert parse_qr_payload(qr_payload(config)) == config


@given(ssids, passwords, tokens)
def test_sealed_settings_open_only_with_the_hello_key(ssid: str, password: str, token: str) -> None:
    key, hello = make_hello(SEED, "TID1", "PID1")
    config = WifiConfig(ssid, password, token)
    sealed = seal(hello, config)
    assert unseal(key, hello, Sealed.from_json(sealed.to_json())) == config
    other_key, _ = make_hello(SEED, "TID1", "PID1")
    with pytest.raises(ValueError, match="not sealed for this device"):
        unseal(other_key, hello, sealed)


def test_tampered_or_misdirected_settings_are_refused() -> None:
    key, hello = make_hello(SEED, "TID1", "PID1")
    sealed = seal(hello, WifiConfig("net", "correct horse battery", TOKEN))
    assert "correct horse" not in str(sealed.to_json())
    data = bytearray(base64.b64decode(sealed.data))
    data[0] ^= 1
    flipped = dataclasses.replace(sealed, data=base64.b64encode(bytes(data)).decode())
    for bad in (
        flipped,
        dataclasses.replace(sealed, iv=base64.b64encode(b"\0" * 12).decode()),
        dataclasses.replace(sealed, pub="not base64!"),
    ):
        with pytest.raises(ValueError, match="not sealed for this device"):
            unseal(key, hello, bad)
    # Sealed for another device's hello (another Tid bound into the key and the tag).
    with pytest.raises(ValueError, match="not sealed"):
        unseal(key, dataclasses.replace(hello, tid="TID2"), sealed)


def test_hellos_are_signed_by_the_device_identity() -> None:
    _, hello = make_hello(SEED, "TID1", "PID1")
    assert verify_hello(hello, PUBLIC)
    assert verify_hello(Hello.from_json(hello.to_json()), PUBLIC)
    stranger = (
        Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    assert not verify_hello(hello, stranger)
    _, mine = make_hello(SEED, "TID1", "PID1")
    # An impostor replaying the device's signature with its own key.
    assert not verify_hello(dataclasses.replace(hello, pub=mine.pub), PUBLIC)
    assert not verify_hello(dataclasses.replace(hello, tid="TID2"), PUBLIC)
    assert not verify_hello(dataclasses.replace(hello, sig="AAAA"), PUBLIC)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("WIFI:S:net;T:WPA;P:pw;;", "does not hold"),
        ('{"v":2,"s":"n","p":"p","t":"t"}', "v1"),
        ('{"v":1,"s":"n","p":"p"}', "lacks"),
        ('{"v":1,"s":1,"p":"p","t":"t"}', "lacks"),
        ('{"v":1,"s":"' + "n" * 33 + '","p":"p","t":"t"}', "32 bytes"),
        ('{"v":1,"s":"n","p":"' + "p" * 64 + '","t":"t"}', "63"),
        ('{"v":1,"s":"n","p":"p","t":""}', "bind token"),
        ("[1]", "v1"),
    ],
)
def test_malformed_payloads(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_qr_payload(text)


@pytest.mark.parametrize(
    "body",
    [None, [], {"v": 2}, {"v": 1, "tid": "T", "pid": "P", "pub": "K", "nonce": "N"}],
)
def test_malformed_hellos(body: object) -> None:
    with pytest.raises(ValueError, match="hello"):
        Hello.from_json(body)


@pytest.mark.parametrize("body", [None, "x", {"nonce": "n", "pub": "p", "iv": "i"}])
def test_malformed_sealed_bodies(body: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        Sealed.from_json(body)
