"""Signed upload grants the vendor API hands out, checked where the upload lands.

- **Firmware upload URLs** (CreateUploadPath): ``PUT <cloud>/firmware/<name>?exp=&sig=``
  stores a firmware file under the cloud's data directory; the same path without the
  query (``GET``) is then the file's ``VersionUrl`` for UploadOtaVersion.
- **Device upload credentials** (CreateUploadTest, RenewUploadTest): a token a device, or
  a vendor's test harness acting for it, sends as ``Authorization: Bearer <token>`` in
  place of the device's own signature when it uploads a cloud-recording segment
  (``POST /vas/device/segment``). It names one device and expires; a session key renews
  it for a day.

Everything is an HMAC under the cloud's URL key, so every instance sharing that key
accepts what any of them issued, and nothing is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = [
    "CREDENTIAL_TTL",
    "SESSION_TTL",
    "UPLOAD_URL_TTL",
    "check_session_key",
    "check_upload_token",
    "firmware_name",
    "session_key",
    "upload_token",
]

#: Seconds a firmware upload URL stays usable.
UPLOAD_URL_TTL = 3600
#: Seconds an upload credential lasts, and how long its session key renews it.
CREDENTIAL_TTL = 1800
SESSION_TTL = 86_400

_FILE_NAME = re.compile(r"^[0-9A-Za-z._-]{1,64}\Z")
_TID = r"[0-9A-Za-z_-]{1,64}"
_TOKEN = re.compile(rf"^ut1\.({_TID})\.(\d{{1,12}})\.([0-9a-f]{{64}})\Z")
_SESSION = re.compile(rf"^sk1\.({_TID})\.([0-9a-z]{{1,16}})\.(\d{{1,12}})\.([0-9a-f]{{64}})\Z")


def _mac(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def firmware_name(file_name: str, nonce: str) -> str:
    """The stored name of an uploaded firmware file (unguessable, the vendor's name kept)."""
    if not _FILE_NAME.match(file_name):
        raise ValueError("letters, digits, '.', '_' and '-', at most 64 characters")
    return f"{nonce}-{file_name}"


def upload_token(secret: bytes, tid: str, expires: int) -> str:
    """A credential to upload segments as ``tid`` until ``expires`` (UNIX seconds)."""
    return f"ut1.{tid}.{expires}.{_mac(secret, f'upload:{tid}:{expires}')}"


def check_upload_token(secret: bytes, token: str, now: int) -> str | None:
    """The Tid an upload token was issued for, or None (malformed, forged or expired)."""
    m = _TOKEN.match(token)
    if m is None or int(m[2]) < now:
        return None
    if not hmac.compare_digest(_mac(secret, f"upload:{m[1]}:{m[2]}"), m[3]):
        return None
    return m[1]


def session_key(secret: bytes, tid: str, pkg_id: str, issued: int) -> str:
    """The key RenewUploadTest takes to issue ``tid`` a new credential."""
    return f"sk1.{tid}.{pkg_id}.{issued}.{_mac(secret, f'session:{tid}:{pkg_id}:{issued}')}"


def check_session_key(secret: bytes, key: str, tid: str, pkg_id: str, now: int) -> bool:
    """Whether ``key`` was issued for this device and package within :data:`SESSION_TTL`."""
    m = _SESSION.match(key)
    if m is None or m[1] != tid or m[2] != pkg_id or now - int(m[3]) > SESSION_TTL:
        return False
    return hmac.compare_digest(_mac(secret, f"session:{tid}:{pkg_id}:{m[3]}"), m[4])
