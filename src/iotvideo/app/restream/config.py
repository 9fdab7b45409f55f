"""``restream.toml``: what ``iotvideo restream --config`` serves (docs/restream.md).

```toml
cloud = "https://cloud.example.com"
access_id = "..."                  # the app user restream signs in as
access_token = "..."               # or IOTVIDEO_ACCESS_TOKEN
host = "0.0.0.0"
rtsp_port = 8554
http_port = 8556
idle = 10                          # seconds a camera is kept after its last client
definition = "high"                # low, mid or high (a camera's own stream: high)

[users]                            # RTSP digest and HTTP basic, every camera
frigate = "a long password"

[[camera]]                         # optional: only these (default: every device)
tid = "0123456789ABCDEF01234567"
token = "a long random token"      # ?token=... opens this camera's URLs
```
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotvideo.app.restream.server import RestreamOptions

__all__ = ["RestreamConfig", "RestreamConfigError", "load_config"]

KEYS = {"cloud", "access_id", "access_token", "host", "rtsp_port", "http_port", "idle",
        "definition", "users", "camera"}  # fmt: skip


class RestreamConfigError(ValueError):
    """The file cannot be used; the message names the key and what to write."""


@dataclass
class RestreamConfig:
    cloud: str | None = None
    access_id: str | None = None
    access_token: str | None = None
    options: RestreamOptions = field(default_factory=RestreamOptions)


def load_config(path: Path) -> RestreamConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RestreamConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RestreamConfigError(f"{path}: not TOML: {exc}") from None
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise RestreamConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
    config = RestreamConfig(
        cloud=_text(raw, "cloud", path),
        access_id=_text(raw, "access_id", path),
        access_token=_text(raw, "access_token", path) or os.environ.get("IOTVIDEO_ACCESS_TOKEN"),
    )
    o = config.options
    o.host = _text(raw, "host", path) or o.host
    o.rtsp_port = _int(raw, "rtsp_port", o.rtsp_port, path, 0, 65535)
    o.http_port = _int(raw, "http_port", o.http_port, path, 0, 65535)
    idle = raw.get("idle", o.idle)
    if isinstance(idle, bool) or not isinstance(idle, int | float) or not 0 < idle <= 3600:
        raise RestreamConfigError(f"{path}: idle: seconds, 0 < idle <= 3600")
    o.idle = float(idle)
    o.definition = _text(raw, "definition", path) or o.definition
    if o.definition not in ("low", "mid", "high"):
        raise RestreamConfigError(f"{path}: definition: low, mid or high")
    users = raw.get("users", {})
    if not isinstance(users, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in users.items()
    ):
        raise RestreamConfigError(f'{path}: [users]: name = "password" lines')
    o.users = dict(users)
    cameras = raw.get("camera")
    if cameras is not None:
        if not isinstance(cameras, list):
            raise RestreamConfigError(f"{path}: camera: [[camera]] tables")
        o.devices, o.tokens = [], {}
        for n, camera in enumerate(cameras, 1):
            where = f"{path}: camera {n}"
            if not isinstance(camera, dict) or set(camera) - {"tid", "token"}:
                raise RestreamConfigError(f"{where}: only tid and token")
            tid = camera.get("tid")
            if not isinstance(tid, str) or not tid:
                raise RestreamConfigError(f'{where}: tid = "..." is missing')
            if tid in o.devices:
                raise RestreamConfigError(f"{where}: {tid} is listed twice")
            o.devices.append(tid)
            token = camera.get("token")
            if token is not None:
                if not isinstance(token, str) or len(token) < 16:
                    raise RestreamConfigError(f"{where}: token: at least 16 characters")
                o.tokens[tid] = token
    return config


def _text(raw: dict[str, Any], key: str, path: Path) -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise RestreamConfigError(f"{path}: {key}: a non-empty string")
    return value


def _int(raw: dict[str, Any], key: str, default: int, path: Path, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RestreamConfigError(f"{path}: {key}: a whole number {low}..{high}")
    return value
