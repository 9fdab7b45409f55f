"""The device Certificate format round-trips and refuses what is not one."""

from __future__ import annotations

import base64
import json

import pytest

from iotvideo.protocol.certificate import DeviceCertificate


def test_round_trip_and_key_hidden_from_repr() -> None:
    cert = DeviceCertificate(tid="ABC", product_id="P1", private_key=bytes(range(32)))
    assert DeviceCertificate.parse(cert.to_string()) == cert
    assert "private_key" not in repr(cert)


def _b64(obj: object) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",
        base64.b64encode(b"not json").decode(),
        _b64([1, 2]),
        _b64({"v": 2, "alg": "Ed25519", "tid": "a", "pid": "b", "sk": "AA=="}),
        _b64({"v": 1, "alg": "RSA", "tid": "a", "pid": "b", "sk": "AA=="}),
        _b64({"v": 1, "alg": "Ed25519", "pid": "b", "sk": "AA=="}),
        _b64({"v": 1, "alg": "Ed25519", "tid": "a", "pid": "b", "sk": "AA=="}),
        _b64({"v": 1, "alg": "Ed25519", "tid": "a", "pid": "b", "sk": "@@@"}),
    ],
)
def test_malformed_certificates(text: str) -> None:
    with pytest.raises(ValueError, match="certificate"):
        DeviceCertificate.parse(text)
