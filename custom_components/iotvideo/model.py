"""Which entity each thing-model definition becomes."""

from __future__ import annotations

from typing import Any

NUMBERS = {"int32", "uint32", "float32", "float64"}
INTEGERS = {"int32", "uint32"}
#: Units as a thing model writes them -> Home Assistant's.
UNITS = {"C": "°C", "F": "°F", "degC": "°C", "%RH": "%"}


def own(section: dict[str, Any]) -> dict[str, Any]:
    """The product's own definitions (built-ins start with ``_``)."""
    return {name: d for name, d in section.items() if not name.startswith("_")}


def writable_platform(definition: dict[str, Any]) -> str | None:
    """``switch``, ``select``, ``number`` or ``text`` for a ProWritable (None: a struct or
    free JSON, which no entity shows)."""
    kind = definition.get("type")
    if kind == "bool":
        return "switch"
    if definition.get("enum"):
        return "select"
    if kind in NUMBERS:
        return "number"
    if kind == "string":
        return "text"
    return None


def unit_of(definition: dict[str, Any]) -> str | None:
    unit = definition.get("unit")
    return UNITS.get(unit, unit) if isinstance(unit, str) and unit else None


def label(name: str) -> str:
    """``nightMode`` -> ``Night mode``."""
    out = "".join(" " + c.lower() if c.isupper() else c for c in name).replace("_", " ")
    return out.strip().capitalize()


def writable(hub: Any, platform: str) -> list[tuple[Any, str, dict[str, Any]]]:
    """(device, name, definition) of every ProWritable that ``platform`` shows."""
    return [
        (device, name, d)
        for device in hub.devices.values()
        for name, d in own(device.model.get("ProWritable", {})).items()
        if writable_platform(d) == platform
    ]
