"""The gateway's config file (TOML; docs/gateway.md has a commented example).

:func:`load_config` reads it whole. An entry that cannot run (a device whose certificate
is missing, a channel with a zone out of range, a key nobody knows) is left out with one
line in :attr:`GatewayConfig.problems` naming it, and everything else runs: one bad
camera never keeps the others dark. Only a file that is not TOML at all, or that names
no cloud, is refused whole (:class:`ConfigError`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotvideo.device.gateway.motion import WHOLE, MotionSettings, Zone
from iotvideo.protocol.certificate import DeviceCertificate

__all__ = [
    "CardSettings",
    "ChannelConfig",
    "ConfigError",
    "DeviceConfig",
    "GatewayConfig",
    "load_config",
    "parse_config",
]

#: Source schemes a channel's ``video`` and ``detect`` may use (media/sources.py).
VIDEO_SCHEMES = ("testsrc:", "file:", "rtsp://", "rtsps://", "v4l2:")
AUDIO_SCHEMES = ("none", "tone:", "file:", "alsa:", "pulse:")


class ConfigError(ValueError):
    """The file as a whole cannot be used (the message says where and why)."""


@dataclass(frozen=True)
class CardSettings:
    """A channel's memory card: a directory, its size and age limits."""

    dir: Path
    max_bytes: int | None = None
    max_days: float = 30.0
    file_seconds: float = 60.0


@dataclass(frozen=True)
class ChannelConfig:
    """One channel (``sourceId``) of a device: its streams, card and detection."""

    number: int
    video: str
    detect: str | None = None
    audio: str = "none"
    card: CardSettings | None = None
    motion: MotionSettings = field(default_factory=MotionSettings)


@dataclass(frozen=True)
class DeviceConfig:
    """One device of the platform: a camera (one channel) or an NVR (several)."""

    #: How problems name it: ``device 2 (certs/nvr.cert)``.
    name: str
    cert: Path
    certificate: DeviceCertificate
    channels: tuple[ChannelConfig, ...]
    max_viewers: int = 4
    sw_version: str = "1.0.0"

    @property
    def tid(self) -> str:
        return self.certificate.tid


@dataclass(frozen=True)
class GatewayConfig:
    cloud: tuple[str, ...]
    #: Where the gateway keeps what must survive a restart (events and cloud-recording
    #: segments not yet uploaded, firmware downloads).
    data: Path
    devices: tuple[DeviceConfig, ...]
    #: One line per entry left out, naming it and saying why.
    problems: tuple[str, ...] = ()


class _Problem(Exception):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and check ``path`` (relative paths in it are relative to its folder)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_config(text, path, env=os.environ if env is None else env)


def parse_config(text: str, path: Path, *, env: Mapping[str, str]) -> GatewayConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML: {exc}") from None
    base = path.parent
    problems: list[str] = []
    for key in sorted(set(raw) - {"cloud", "data", "device"}):
        problems.append(f"{path}: unknown key {key!r} (ignored)")
    cloud = _cloud(raw.get("cloud"), env, path)
    data = base / str(raw.get("data", "gateway-data"))
    devices: list[DeviceConfig] = []
    seen: dict[str, str] = {}
    entries = raw.get("device", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: [[device]] entries are a list of tables")
    for index, entry in enumerate(entries, 1):
        where = f"{path}: device {index}"
        try:
            device = _device(entry, index, base, where, problems)
        except _Problem as exc:
            problems.append(f"{where}: {exc} (this device does not run)")
            continue
        if device.tid in seen:
            taken = f"Tid {device.tid} is {seen[device.tid]} already"
            problems.append(f"{where}: {taken} (this device does not run)")
            continue
        seen[device.tid] = device.name
        devices.append(device)
    return GatewayConfig(tuple(cloud), data, tuple(devices), tuple(problems))


def _cloud(value: Any, env: Mapping[str, str], path: Path) -> list[str]:
    if value is None:
        value = [u for u in env.get("IOTVIDEO_CLOUD", "").replace(",", " ").split() if u]
    if isinstance(value, str):
        value = [value]
    if not value or not all(isinstance(u, str) and "://" in u for u in value):
        raise ConfigError(
            f'{path}: cloud = ["https://..."] names the cloud (or set IOTVIDEO_CLOUD)'
        )
    return list(value)


def _device(entry: Any, index: int, base: Path, where: str, problems: list[str]) -> DeviceConfig:
    table = _table(entry, "", {"cert", "max_viewers", "sw_version", "channel"})
    cert_value = table.get("cert")
    if not isinstance(cert_value, str):
        raise _Problem(
            "cert", 'missing: cert = "certs/TID.cert" (the Certificate CreateDevices returned)'
        )
    cert = base / cert_value
    try:
        certificate = DeviceCertificate.parse(cert.read_text().strip())
    except OSError as exc:
        raise _Problem("cert", f"cannot read {cert}: {exc.strerror}") from None
    except ValueError as exc:
        raise _Problem("cert", f"{cert} holds no device Certificate: {exc}") from None
    name = f"device {index} ({cert_value}, {certificate.tid})"
    max_viewers = _number(table, "max_viewers", 4, low=1, high=64, kind=int)
    sw_version = table.get("sw_version", "1.0.0")
    if not isinstance(sw_version, str):
        raise _Problem("sw_version", 'a string such as "1.0.0"')
    channels: list[ChannelConfig] = []
    left_out: list[str] = []
    raw_channels = table.get("channel", [])
    if not isinstance(raw_channels, list) or not raw_channels:
        raise _Problem("channel", "a device needs at least one [[device.channel]]")
    for position, raw in enumerate(raw_channels, 1):
        try:
            channel = _channel(raw, position, base)
        except _Problem as exc:
            left_out.append(f"channel {position}: {exc}")
            continue
        if any(c.number == channel.number for c in channels):
            left_out.append(f"channel {position}: number {channel.number} is taken")
            continue
        channels.append(channel)
    if not channels:
        raise _Problem("", "; ".join(left_out))  # one line: the device does not run
    named = where.rsplit(": ", 1)[0] + f": {name}"  # "<file>: device N (<cert>, <Tid>)"
    problems += [f"{named}: {line} (this channel does not run)" for line in left_out]
    return DeviceConfig(name, cert, certificate, tuple(channels), max_viewers, sw_version)


def _channel(raw: Any, position: int, base: Path) -> ChannelConfig:
    table = _table(raw, "", {"number", "video", "detect", "audio", "card", "motion"})
    number = _number(table, "number", position, low=1, high=64, kind=int)
    video = _source(table, "video", VIDEO_SCHEMES, required=True)
    detect = _source(table, "detect", VIDEO_SCHEMES, required=False)
    audio = _source(table, "audio", AUDIO_SCHEMES, required=False) or "none"
    card = _card(table.get("card"), base)
    motion = _motion(table.get("motion"))
    assert video is not None
    return ChannelConfig(number, video, detect, audio, card, motion)


def _card(raw: Any, base: Path) -> CardSettings | None:
    if raw is None:
        return None
    table = _table(raw, "card", {"dir", "max_bytes", "max_days", "file_seconds"})
    folder = table.get("dir")
    if not isinstance(folder, str) or not folder:
        raise _Problem("card.dir", 'missing: card = { dir = "card/TID-1" }')
    max_bytes = table.get("max_bytes")
    if max_bytes is not None:
        max_bytes = _number(
            table, "max_bytes", 0, low=1 << 20, high=1 << 50, kind=int, where="card"
        )
    return CardSettings(
        base / folder,
        max_bytes,
        _number(table, "max_days", 30.0, low=0.01, high=3650, where="card"),
        _number(table, "file_seconds", 60.0, low=1, high=3600, where="card"),
    )


def _motion(raw: Any) -> MotionSettings:
    if raw is None:
        return MotionSettings()
    keys = {"enabled", "sensitivity", "min_area", "cooldown", "zones", "fps", "width"}
    table = _table(raw, "motion", keys)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _Problem("motion.enabled", "true or false")
    zones = _zones(table.get("zones"))
    return MotionSettings(
        enabled=enabled,
        sensitivity=_number(table, "sensitivity", 0.5, low=0, high=1, where="motion"),
        min_area=_number(table, "min_area", 0.01, low=0, high=1, where="motion"),
        cooldown=_number(table, "cooldown", 10.0, low=0.5, high=3600, where="motion"),
        zones=zones,
        fps=_number(table, "fps", 5.0, low=0.5, high=30, where="motion"),
        width=_number(table, "width", 320, low=64, high=1920, kind=int, where="motion"),
    )


def _zones(raw: Any) -> tuple[Zone, ...]:
    if raw is None:
        return (WHOLE,)
    if not isinstance(raw, list) or not raw:
        raise _Problem("motion.zones", "a list of polygons, each a list of [x, y] points")
    zones: list[Zone] = []
    for z, polygon in enumerate(raw):
        if not isinstance(polygon, list) or len(polygon) < 3:
            raise _Problem(f"motion.zones[{z}]", "a polygon of at least 3 [x, y] points")
        points: list[tuple[float, float]] = []
        for p, point in enumerate(polygon):
            here = f"motion.zones[{z}][{p}]"
            if (
                not isinstance(point, list)
                or len(point) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in point)
            ):
                raise _Problem(here, "a point is [x, y], two numbers")
            if not all(0 <= v <= 1 for v in point):
                raise _Problem(here, f"{point} is outside the picture: x and y are 0..1")
            points.append((float(point[0]), float(point[1])))
        zones.append(tuple(points))
    return tuple(zones)


def _table(raw: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _Problem(where, "must be a table")
    unknown = sorted(set(raw) - keys)
    if unknown:
        prefix = f"{where}." if where else ""
        raise _Problem(f"{prefix}{unknown[0]}", f"unknown key (known: {', '.join(sorted(keys))})")
    return raw


def _number(
    table: dict[str, Any],
    key: str,
    default: Any,
    *,
    low: float,
    high: float,
    kind: type = float,
    where: str = "",
) -> Any:
    value = table.get(key, default)
    name = f"{where}.{key}" if where else key
    number_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, number_types):
        raise _Problem(name, f"a {'whole ' if kind is int else ''}number")
    if not low <= value <= high:
        raise _Problem(name, f"{value} is outside {low:g}..{high:g}")
    return kind(value)


def _source(
    table: dict[str, Any], key: str, schemes: tuple[str, ...], *, required: bool
) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise _Problem(key, f'missing: {key} = "rtsp://user:pass@camera/stream"')
        return None
    if not isinstance(value, str) or not value.lower().startswith(schemes):
        raise _Problem(key, f"{value!r} is no source: use {', '.join(schemes)}")
    return value
