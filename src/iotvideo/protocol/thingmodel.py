"""The thing model: product definitions, paths, validation and the per-device state tree.

A product's model (the ``IotModel`` of CreateIotModel/RunIotModel) is a JSON object with
one optional member per section, each mapping object names to type definitions::

    {
      "ProReadonly": {"temperature": {"type": "float32", "min": -40, "max": 125, "unit": "C"}},
      "ProWritable": {"nightMode": {"type": "uint32", "enum": [0, 1, 2], "default": 0},
                      "led": {"type": "bool", "default": true}},
      "Action": {"cameraOn": {"type": "uint32", "enum": [0, 1]}},
      "Event": {"motion": {"type": "json"}},
      "ProConst": {"lensCount": {"type": "uint32"}}
    }

Types: ``int32``, ``uint32``, ``float32``, ``float64``, ``bool``, ``string`` (with
``max``, default 64; ``string32``/``string64``/``stringN`` are shorthands), ``struct``
(with ``fields``), ``json`` (any JSON value). Numbers take ``min``/``max``/``enum``;
``default`` is the initial value of a ProWritable.

A device's state is one JSON tree, ``Section.name.attribute``; every object also carries
``t``, the UNIX time of its last change::

    ProReadonly.x = {"stVal": v, "t": ...}         (also ProConst, Event)
    ProWritable.x = {"setVal": v, "stVal": v, "t": ...}   setVal: wanted, stVal: applied
    Action.x      = {"ctlVal": v, "stVal": v, "t": ...}
    ProUser.x     = {"val": v, "t": ...}

Built-ins every device has: ``ProReadonly._online`` (0 offline, 1 online, 2 asleep),
``ProWritable._logLevel``, ``ProConst._versionInfo`` {sdkVer, swVer, hwVer},
``ProConst._productInfo``, ``Action._otaVersion``, ``Action._otaUpgrade``,
``ProReadonly._otaUpgrade`` (progress 0..100) and ``ProUser._buildIn`` {almEvtPushEna,
nickName}. User names may not start with ``_``.

Errors carry the seed's codes: a path that names nothing writable is 20101, an unreadable
JSON value 20102, a value of the wrong type or out of range 20143, a ProUser name starting
with ``_`` 8605.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from iotvideo.protocol import jsontext
from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = [
    "ATTRIBUTES",
    "MAX_PATH_DEPTH",
    "SECTIONS",
    "Change",
    "Definition",
    "ThingModel",
    "apply",
    "parse_json_value",
    "parse_path",
    "read",
]

SECTIONS = ("ProConst", "ProReadonly", "ProWritable", "Action", "Event", "ProUser")
#: The attributes each section's objects have, besides ``t``.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "ProConst": ("stVal",),
    "ProReadonly": ("stVal",),
    "ProWritable": ("setVal", "stVal"),
    "Action": ("ctlVal", "stVal"),
    "Event": ("stVal",),
    "ProUser": ("val",),
}
MAX_PATH_DEPTH = 8
MAX_PATH_LENGTH = 256
MAX_OBJECTS_PER_SECTION = 256
#: Largest JSON text of one value (ProUser values, events, free-form JSON).
MAX_VALUE_BYTES = 16 * 1024

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_USER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_STRING_N = re.compile(r"^string(\d{1,5})\Z")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1)}


def _error(code: ErrorCode, message: str) -> IVError:
    return IVError.of(code, message)


def _path_error(message: str) -> IVError:
    return _error(ErrorCode.IVTermErr_msg_gdm_handle_leaf_path_error, message)


def _value_error(message: str) -> IVError:
    return _error(ErrorCode.IVTermErr_msg_user_cmd_param_error, message)


def parse_path(path: str) -> tuple[str, ...]:
    """Split a dot path; ``""`` is the whole model. Raise 20101 for a malformed path."""
    if path == "":
        return ()
    if len(path) > MAX_PATH_LENGTH:
        raise _path_error(f"path longer than {MAX_PATH_LENGTH} characters")
    parts = tuple(path.split("."))
    if len(parts) > MAX_PATH_DEPTH:
        raise _path_error(f"path deeper than {MAX_PATH_DEPTH} levels")
    for part in parts:
        if not _NAME.match(part):
            raise _path_error(f"invalid path component {part!r} in {path!r}")
    if parts[0] not in SECTIONS:
        raise _path_error(f"unknown section {parts[0]!r}; sections are {', '.join(SECTIONS)}")
    return parts


def parse_json_value(text: str) -> Any:
    """Parse the JSON text of a value (the seed passes values as JSON strings). 20102 if bad."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        raise _value_error(f"value larger than {MAX_VALUE_BYTES} bytes")
    try:
        return jsontext.loads(text)
    except jsontext.Unrepresentable as exc:
        raise _value_error(str(exc)) from None
    except ValueError:
        raise _error(
            ErrorCode.IVTermErr_msg_gdm_handle_parse_json_fail, f"not valid JSON: {text[:40]!r}"
        ) from None


def read(state: Mapping[str, Any], path: str) -> Any:
    """The subtree of ``state`` at ``path`` (a deep copy). 20101 if nothing is there."""
    node: Any = state
    for part in parse_path(path):
        if not isinstance(node, Mapping) or part not in node:
            raise _path_error(f"nothing at {path!r}")
        node = node[part]
    return copy.deepcopy(node)


def _bound(value: Any, where: str, name: str, *, integer: bool = False) -> Any:
    """A number from a definition (``min``, ``max``); ValueError if it is not one."""
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        raise ValueError(f"{where}: {name!r} must be a {'whole ' if integer else ''}number")
    if integer and not 1 <= value <= 65536:
        raise ValueError(f"{where}: {name!r} must be 1..65536")
    return value


def _scalar(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float | str)


@dataclass(frozen=True)
class Definition:
    """The type of one data object (or of one struct field)."""

    type: str
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    max_length: int = 64
    fields: Mapping[str, Definition] = field(default_factory=dict)
    default: Any = None
    #: What the number measures ("C", "%"), for people reading it; no effect on checks.
    unit: str | None = None

    @classmethod
    def parse(cls, spec: Any, where: str, depth: int = 0) -> Definition:
        if depth > MAX_PATH_DEPTH:
            raise ValueError(f"{where}: structs nest at most {MAX_PATH_DEPTH} deep")
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, Mapping) or not isinstance(spec.get("type", "json"), str):
            raise ValueError(f"{where}: a definition is an object with a string 'type'")
        kind = spec.get("type", "json")
        max_length = 64
        if (m := _STRING_N.match(kind)) is not None:
            kind, max_length = "string", int(m[1])
        if kind not in {
            "int32",
            "uint32",
            "float32",
            "float64",
            "bool",
            "string",
            "struct",
            "json",
        }:
            raise ValueError(f"{where}: unknown type {kind!r}")
        if kind == "string":
            max_length = _bound(spec.get("max", max_length), where, "max", integer=True)
        fields: dict[str, Definition] = {}
        if kind == "struct":
            raw = spec.get("fields")
            if not isinstance(raw, Mapping) or not raw or len(raw) > MAX_OBJECTS_PER_SECTION:
                raise ValueError(f"{where}: a struct needs 'fields' (1 to 256 of them)")
            for name, sub in raw.items():
                if not _NAME.match(str(name)):
                    raise ValueError(f"{where}: invalid field name {name!r}")
                fields[name] = cls.parse(sub, f"{where}.{name}", depth + 1)
        enum = spec.get("enum")
        if enum is not None and (
            not isinstance(enum, list) or not enum or not all(_scalar(v) for v in enum)
        ):
            raise ValueError(f"{where}: 'enum' must be a non-empty list of numbers or strings")
        numeric = kind in ("int32", "uint32", "float32", "float64")
        definition = cls(
            type=kind,
            minimum=_bound(spec["min"], where, "min") if numeric and "min" in spec else None,
            maximum=_bound(spec["max"], where, "max") if numeric and "max" in spec else None,
            enum=tuple(enum) if enum is not None else None,
            max_length=max_length,
            fields=fields,
            unit=spec["unit"][:16] if isinstance(spec.get("unit"), str) else None,
        )
        if "default" in spec:
            try:
                definition.check(spec["default"], f"{where}.default")
            except IVError as exc:
                raise ValueError(exc.message) from None
            definition = replace(definition, default=spec["default"])
        return definition

    def describe(self) -> dict[str, Any]:
        """This type in the model's own JSON form (what a console builds its controls from)."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "string":
            out["max"] = self.max_length
        if self.minimum is not None:
            out["min"] = self.minimum
        if self.maximum is not None:
            out["max"] = self.maximum
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.fields:
            out["fields"] = {name: sub.describe() for name, sub in self.fields.items()}
        if self.default is not None:
            out["default"] = copy.deepcopy(self.default)
        if self.unit is not None:
            out["unit"] = self.unit
        return out

    def check(self, value: Any, where: str) -> Any:
        """Return ``value`` if it fits this type; raise 20143 saying why not."""
        kind = self.type
        if kind in _INT_RANGES:
            low, high = _INT_RANGES[kind]
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise _value_error(f"{where} must be an {kind}")
        elif kind in ("float32", "float64"):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise _value_error(f"{where} must be a finite number")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise _value_error(f"{where} must be true or false")
        elif kind == "string":
            if not isinstance(value, str) or len(value) > self.max_length:
                raise _value_error(
                    f"{where} must be a string of at most {self.max_length} characters"
                )
        elif kind == "struct":
            return self._check_struct(value, where)
        elif len(json.dumps(value)) > MAX_VALUE_BYTES:
            raise _value_error(f"{where} is larger than {MAX_VALUE_BYTES} bytes")
        if self.minimum is not None and value < self.minimum:
            raise _value_error(f"{where} must be >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise _value_error(f"{where} must be <= {self.maximum}")
        if self.enum is not None and value not in self.enum:
            raise _value_error(f"{where} must be one of {list(self.enum)}")
        return value

    def _check_struct(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _value_error(f"{where} must be an object")
        out = {}
        for name, sub in value.items():
            definition = self.fields.get(name)
            if definition is None:
                raise _value_error(f"{where} has no field {name!r}")
            out[name] = definition.check(sub, f"{where}.{name}")
        return out

    def initial(self) -> Any:
        if self.default is not None:
            return copy.deepcopy(self.default)
        if self.type == "struct":
            return {name: sub.initial() for name, sub in self.fields.items()}
        return {"int32": 0, "uint32": 0, "float32": 0.0, "float64": 0.0, "bool": False}.get(
            self.type, "" if self.type == "string" else None
        )


_VERSION_INFO = Definition.parse(
    {"type": "struct", "fields": {"sdkVer": "string32", "swVer": "string32", "hwVer": "string32"}},
    "_versionInfo",
)
_PRODUCT_INFO = Definition.parse(
    {
        "type": "struct",
        "fields": {
            "productModel": "string64",
            "productID": "string32",
            "revision": "uint32",
            "revisionUtc": "uint32",
        },
    },
    "_productInfo",
)
_BUILT_INS: dict[str, dict[str, Definition]] = {
    "ProConst": {"_versionInfo": _VERSION_INFO, "_productInfo": _PRODUCT_INFO},
    "ProReadonly": {
        "_online": Definition("uint32", enum=(0, 1, 2)),
        "_otaUpgrade": Definition("uint32", minimum=0, maximum=100),
    },
    "ProWritable": {"_logLevel": Definition("uint32", minimum=0, maximum=5, default=3)},
    "Action": {"_otaVersion": Definition("json"), "_otaUpgrade": Definition("json")},
    "Event": {},
    "ProUser": {
        "_buildIn": Definition.parse(
            {
                "type": "struct",
                "fields": {
                    "almEvtPushEna": {"type": "uint32", "enum": [0, 1]},
                    "nickName": "string64",
                },
            },
            "_buildIn",
        )
    },
}


@dataclass(frozen=True)
class Change:
    """What a validated operation changes: ``attrs`` of object ``section.name``."""

    section: str
    name: str
    attrs: dict[str, Any]
    #: Merge object values into the stored ones (struct writes may name some fields only).
    merge: bool = False

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"

    def value(self, attr: str) -> Any:
        return self.attrs[attr]


class ThingModel:
    """A product's definitions plus the built-ins, and the operations they allow."""

    def __init__(
        self, sections: Mapping[str, Mapping[str, Definition]], source: str = "{}"
    ) -> None:
        self.sections = {
            name: {**_BUILT_INS[name], **dict(sections.get(name, {}))} for name in SECTIONS
        }
        self.source = source

    @classmethod
    def builtins_only(cls) -> ThingModel:
        return cls({})

    @classmethod
    def parse(cls, text: str) -> ThingModel:
        """Read a product model; raise :class:`ValueError` saying what is wrong."""
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise ValueError("the model is not valid JSON") from None
        if not isinstance(raw, dict):
            raise ValueError("the model must be a JSON object of sections")
        sections: dict[str, dict[str, Definition]] = {}
        for section, objects in raw.items():
            if section not in SECTIONS or section == "ProUser":
                raise ValueError(f"unknown section {section!r}; use {', '.join(SECTIONS[:5])}")
            if not isinstance(objects, dict) or len(objects) > MAX_OBJECTS_PER_SECTION:
                raise ValueError(f"{section} must be an object of at most 256 definitions")
            for name, spec in objects.items():
                if not _USER_NAME.match(name):
                    raise ValueError(
                        f"{section}.{name}: names are letters, digits and '_', not starting "
                        "with '_' (reserved for built-ins)"
                    )
                sections.setdefault(section, {})[name] = Definition.parse(spec, f"{section}.{name}")
        return cls(sections, source=json.dumps(raw, sort_keys=True, separators=(",", ":")))

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every section's definitions, built-ins included, as JSON (``model.get``)."""
        return {
            section: {name: d.describe() for name, d in objects.items()}
            for section, objects in self.sections.items()
        }

    def definition(self, section: str, name: str) -> Definition:
        found = self.sections[section].get(name)
        if found is None:
            raise _path_error(f"{section}.{name} is not in the model")
        return found

    # The initial state of a device

    def initial_state(self, now: int) -> dict[str, Any]:
        state: dict[str, Any] = {section: {} for section in SECTIONS}
        for name, d in self.sections["ProWritable"].items():
            state["ProWritable"][name] = {"setVal": d.initial(), "stVal": d.initial(), "t": now}
        for name, d in self.sections["ProReadonly"].items():
            state["ProReadonly"][name] = {"stVal": d.initial(), "t": now}
        state["ProUser"]["_buildIn"] = {
            "val": self.sections["ProUser"]["_buildIn"].initial(),
            "t": now,
        }
        return state

    def upgrade_state(self, state: dict[str, Any], now: int) -> bool:
        """Add the objects a newer model defines to an existing state; True if it changed."""
        fresh = self.initial_state(now)
        changed = False
        for section, objects in fresh.items():
            have = state.setdefault(section, {})
            for name, obj in objects.items():
                if name not in have:
                    have[name] = obj
                    changed = True
        return changed

    # What apps may do

    def app_write(self, path: str, value_json: str) -> Change:
        """A write_property of an app: ProWritable setVal, or a ProUser value.

        Both of the seed's forms work: ``("ProWritable.x", '{"setVal": 1}')`` and
        ``("ProWritable.x.setVal", "1")``; for ProUser ``("ProUser.x.val", '{...}')`` and
        ``("ProUser._buildIn.val.nickName", '"n"')``.
        """
        parts = parse_path(path)
        value = parse_json_value(value_json)
        if len(parts) < 2 or parts[0] not in ("ProWritable", "ProUser"):
            raise _path_error(f"{path!r} is not writable: apps write ProWritable and ProUser")
        section, name = parts[0], parts[1]
        attr = ATTRIBUTES[section][0]  # setVal / val
        value = self._wrapped(parts, value, attr, path)
        nested = len(parts) > 3  # X.attr.field: a partial value, merged into the stored one
        if section == "ProUser" and not name.startswith("_"):
            Definition("json").check(value, path)
            return Change(section, name, {attr: value}, merge=nested)
        definition = self.definition(section, name)
        checked = definition.check(value, path)
        return Change(section, name, {attr: checked}, merge=nested or definition.type == "struct")

    def app_action(self, path: str, value_json: str) -> Change:
        """A take_action: ``("Action.x", '{"ctlVal": 1}')`` or ``("Action.x.ctlVal", "1")``."""
        parts = parse_path(path)
        value = parse_json_value(value_json)
        if len(parts) < 2 or parts[0] != "Action":
            raise _path_error(f"{path!r} is not an action")
        value = self._wrapped(parts, value, "ctlVal", path)
        definition = self.definition("Action", parts[1])
        return Change("Action", parts[1], {"ctlVal": definition.check(value, path)})

    def user_add(self, path: str, value_json: str) -> Change:
        """add_property: a ProUser object; adding again overwrites. 8605 for ``_`` names."""
        parts = parse_path(path)
        if len(parts) != 2 or parts[0] != "ProUser":
            raise _path_error("add_property takes a path ProUser.<name>")
        _check_user_name(parts[1])
        value = parse_json_value(value_json)
        Definition("json").check(value, path)
        return Change("ProUser", parts[1], {"val": value})

    def user_delete(self, path: str) -> str:
        """delete_property: the ProUser name to remove. 8605 for ``_`` names."""
        parts = parse_path(path)
        if len(parts) != 2 or parts[0] != "ProUser":
            raise _path_error("delete_property takes a path ProUser.<name>")
        _check_user_name(parts[1])
        return parts[1]

    # What devices report

    def device_report(self, path: str, value: Any) -> Change:
        """A device reporting a state value (stVal) of ProReadonly/ProConst/ProWritable/Action."""
        parts = parse_path(path)
        if len(parts) not in (2, 3) or parts[0] not in (
            "ProReadonly",
            "ProConst",
            "ProWritable",
            "Action",
        ):
            raise _path_error(f"{path!r} is not something a device reports")
        if len(parts) == 3 and parts[2] != "stVal":
            raise _path_error(f"devices report stVal, not {parts[2]!r}")
        section, name = parts[0], parts[1]
        definition = self.definition(section, name)
        return Change(
            section, name, {"stVal": definition.check(value, path)}, definition.type == "struct"
        )

    def device_event(self, path: str, value: Any) -> Change:
        parts = parse_path(path)
        if len(parts) != 2 or parts[0] != "Event":
            raise _path_error(f"{path!r} is not an event (Event.<name>)")
        definition = self.sections["Event"].get(parts[1], Definition("json"))
        return Change("Event", parts[1], {"stVal": definition.check(value, path)})

    def _wrapped(self, parts: tuple[str, ...], value: Any, attr: str, path: str) -> Any:
        """The value of ``attr`` from either form: ``X {"attr": v}`` or ``X.attr v``."""
        if len(parts) == 2:
            if not isinstance(value, dict) or set(value) != {attr}:
                raise _value_error(
                    f"write {{{attr!r}: value}} to {path!r}, or a value to {path}.{attr}"
                )
            return value[attr]
        if parts[2] != attr:
            raise _path_error(f"{'.'.join(parts[:2])} has no writable attribute {parts[2]!r}")
        if len(parts) == 3:
            return value
        return self._nested(parts, value, path)

    def _nested(self, parts: tuple[str, ...], value: Any, path: str) -> Any:
        """``X.attr.field[.field]``: a field of a struct; returns a partial struct."""
        definition = self.sections[parts[0]].get(parts[1])
        if definition is None:
            raise _path_error(f"{parts[0]}.{parts[1]} is not in the model")
        partial: Any = value
        for field_name in reversed(parts[3:]):
            partial = {field_name: partial}
        if definition.type not in ("struct", "json"):
            raise _path_error(f"{'.'.join(parts[:3])} has no field {parts[3]!r}")
        return partial


def _check_user_name(name: str) -> None:
    if name.startswith("_"):
        raise _error(
            ErrorCode.IVCSrvErr_prouser_name_reserved,
            f"ProUser names starting with '_' are reserved for built-ins: {name!r}",
        )
    if not _USER_NAME.match(name):
        raise _path_error(f"invalid ProUser name {name!r}")


def apply(state: dict[str, Any], change: Change, now: int) -> dict[str, Any]:
    """Apply ``change`` to ``state`` in place; return the object after the change."""
    objects = state.setdefault(change.section, {})
    obj = objects.setdefault(change.name, {})
    for attr, value in change.attrs.items():
        old = obj.get(attr)
        if change.merge and isinstance(old, dict) and isinstance(value, dict):
            obj[attr] = {**old, **value}
        else:
            obj[attr] = copy.deepcopy(value)
    obj["t"] = now
    return copy.deepcopy(obj)
