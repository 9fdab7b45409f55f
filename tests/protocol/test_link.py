"""The link wire format without I/O: frames, login proofs, reconnect delays."""

from __future__ import annotations

import json
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from iotvideo.protocol import link
from iotvideo.protocol.link import Backoff, FrameError, Push, Reply, Request
from iotvideo.protocol.vas import upload_message, upload_subject


@pytest.mark.parametrize(
    "frame",
    [
        Request(7, "prop.read", {"tid": "T", "path": ""}),
        Reply(7, 0, {"value": {"stVal": 1, "t": 2}}),
        Reply(8, 8003, msg="no relation"),
        Push("event", {"tid": "T", "topic": "motion", "value": None}),
        Request(2**53 - 1, "ping"),
    ],
)
def test_frames_round_trip(frame: Request | Reply | Push) -> None:
    assert link.parse_frame(frame.encode()) == frame
    assert link.parse_frame(frame.encode().encode()) == frame


@pytest.mark.parametrize(
    ("text", "code", "frame_id"),
    [
        ("{nope", 20102, None),
        ("[]", 20102, None),
        ('{"id": 0, "op": "x"}', 20143, None),
        ('{"id": -1, "op": "x"}', 20143, None),
        ('{"id": true, "op": "x"}', 20143, None),
        ('{"id": 3, "op": "x", "data": []}', 20143, 3),
        ('{"id": 3, "op": ""}', 20143, 3),
        ('{"id": 3, "op": "' + "x" * 40 + '"}', 20143, 3),
        ('{"id": 3, "code": "0"}', 20143, 3),
        ('{"code": 0}', 20143, None),
        ('{"op": 5}', 20143, None),
    ],
)
def test_malformed_frames(text: str, code: int, frame_id: int | None) -> None:
    with pytest.raises(FrameError) as info:
        link.parse_frame(text)
    assert (info.value.code, info.value.id) == (code, frame_id)


def test_oversized_frames_keep_their_id() -> None:
    big = json.dumps({"id": 12, "op": "data", "data": {"data": "x" * link.MAX_FRAME_BYTES}})
    with pytest.raises(FrameError) as info:
        link.parse_frame(big)
    assert (info.value.code, info.value.id) == (21008, 12)
    with pytest.raises(FrameError) as info:
        link.parse_frame('{"op": "x", "data": "' + "y" * link.MAX_FRAME_BYTES + '"}')
    assert (info.value.code, info.value.id) == (21008, None)


def test_login_proofs() -> None:
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    sig = link.sign_login(seed, "TID", "nonce-1-0123456789ab", 1000)
    assert link.verify_login(public, "TID", "nonce-1-0123456789ab", 1000, sig)
    assert not link.verify_login(public, "TID", "nonce-2-0123456789ab", 1000, sig), (
        "bound to the nonce"
    )
    assert not link.verify_login(public, "TID", "nonce-1-0123456789ab", 1001, sig)
    assert not link.verify_login(public, "OTHER", "nonce-1-0123456789ab", 1000, sig)
    assert not link.verify_login(public, "TID", "nonce-1-0123456789ab", 1000, "not base64!")
    assert not link.verify_login(b"short", "TID", "nonce-1-0123456789ab", 1000, sig)
    assert link.login_message("T", "n", 5) == b"iotvideo-login-v1\nT\nn\n5"


def test_libsodium_and_openssl_agree_on_every_proof() -> None:
    """The cloud verifies with libsodium (PyNaCl), a device without it with OpenSSL."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    message = link.login_message("TID", "nonce-1-0123456789ab", 1000)
    good = key.sign(message)
    cases = [
        (public, message, good, True),
        (public, message + b"x", good, False),
        (public, message, good[:-1] + bytes([good[-1] ^ 1]), False),
        (public, message, good[:63], False),
        (public, message, b"", False),
        (public[:31], message, good, False),
        (Ed25519PrivateKey.generate().public_key().public_bytes_raw(), message, good, False),
    ]
    assert link._verify is not link._verify_openssl, "PyNaCl is installed with the cloud"
    for public_key, signed, signature, valid in cases:
        assert link._verify(public_key, signed, signature) is valid
        assert link._verify_openssl(public_key, signed, signature) is valid


def test_backoff_grows_with_full_jitter_and_resets() -> None:
    backoff = Backoff(base=0.5, cap=30, rng=random.Random(7))
    delays = [backoff.next() for _ in range(12)]
    ceilings = [min(30, 0.5 * 2**n) for n in range(12)]
    assert all(backoff.floor <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[8:]) > 1, "later attempts wait longer"
    assert len(set(delays)) == len(delays), "jittered"
    backoff.reset()
    assert backoff.next() <= 0.5


def test_data_codec() -> None:
    assert link.decode_data(link.encode_data(b"\x00\xff")) == b"\x00\xff"
    for bad in ("***", 5, None):
        with pytest.raises(ValueError, match="base64"):
            link.decode_data(bad)


def test_a_signature_made_for_one_purpose_never_passes_for_another() -> None:
    """A fake cloud once sent, as its login nonce, the text a device signs for an upload,
    and got a valid upload signature back: every signed message now names its purpose."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    tid, now = "T1", 1_800_000_000
    target = "/vas/device/event?chn=0&alarmType=1&firstAlarmType=1&start=1&end=2&id=x"
    upload = upload_message(tid, "POST", target, b"", now)

    # The crafted nonce is refused before anything is signed...
    with pytest.raises(ValueError, match="nonce"):
        link.sign_login(seed, tid, upload_subject("POST", target, b""), now)
    with pytest.raises(ValueError, match="nonce"):
        link.sign_login(seed, tid, "http POST /vas/device/event 00", now)
    # ...and no login signature, whatever its nonce, verifies as an upload, nor back.
    login = link.sign_login(seed, tid, "A" * 32, now)
    assert link.verify_login(public, tid, "A" * 32, now, login)
    assert not link.verify(public, upload, login)
    made = link.sign(seed, upload)
    assert link.verify(public, upload, made)
    assert not link.verify_login(public, tid, "A" * 32, now, made)
