"""Request parameters: typed, bounded, and checked before any action runs.

Each action declares a :class:`Params` model whose field names are the vendor API's own
(``ProductId``, ``Tids``...). JSON bodies are validated strictly (``"5"`` is not an
Integer); GET and form-encoded requests carry strings only and are validated leniently
after :func:`unflatten`. Validation failures become the codes an API 3.0 client expects:

=========================  ==========================================
missing field              ``MissingParameter``
field the action lacks     ``UnknownParameter``
wrong JSON type            ``InvalidParameter``
value out of its limits    ``InvalidParameterValue``
=========================  ==========================================
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from iotvideo.cloud.vendor.errors import Code, VendorError

__all__ = [
    "PRINTABLE",
    "Count",
    "Id",
    "IdList",
    "Offset",
    "Opaque",
    "Params",
    "Short",
    "Timestamp",
    "TtlMinutes",
    "from_validation_error",
    "unflatten",
    "validate",
]

_MAX_INT = (1 << 31) - 1


def _printable(value: str) -> str:
    """Refuse NUL, other control characters and lone surrogates: no database stores them."""
    if any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("must not contain control characters or lone surrogates")
    return value


PRINTABLE = AfterValidator(_printable)

#: An identifier the cloud issued (ProductId, Tid, AccessId...).
Id = Annotated[str, Field(min_length=1, max_length=64), PRINTABLE]
#: A short free text (names, nicks, operators).
Short = Annotated[str, Field(max_length=64), PRINTABLE]
#: A token or other opaque value a client passes back.
Opaque = Annotated[str, Field(min_length=1, max_length=256), PRINTABLE]
Offset = Annotated[int, Field(ge=0, le=_MAX_INT)]
Count = Annotated[int, Field(ge=1, le=100)]
Timestamp = Annotated[int, Field(ge=0, le=_MAX_INT * 2)]
# One year; nobody should hold a longer-lived token.
TtlMinutes = Annotated[int, Field(ge=1, le=525_600)]
IdList = Annotated[list[Id], Field(min_length=1, max_length=100)]


class Params(BaseModel):
    """Base of every action's parameters: strict types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def validate(model: type[Params], data: dict[str, Any], *, lenient: bool) -> Params:
    """Validate ``data``; raise :class:`VendorError` with the first problem."""
    try:
        return model.model_validate(data, strict=not lenient)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def from_validation_error(exc: ValidationError) -> VendorError:
    error = exc.errors(include_url=False)[0]
    name = ".".join(str(part) for part in error["loc"]) or "the request"
    kind = error["type"]
    if kind == "missing":
        return VendorError(Code.MISSING_PARAMETER, f"The parameter {name} is required.")
    if kind == "extra_forbidden":
        return VendorError(
            Code.UNKNOWN_PARAMETER, f"The parameter {name} is not a parameter of this action."
        )
    if _is_type_error(error):
        return VendorError(
            Code.INVALID_PARAMETER, f"The parameter {name} has the wrong type: {error['msg']}."
        )
    return VendorError(
        Code.INVALID_PARAMETER_VALUE, f"The value of {name} is invalid: {_msg(error)}."
    )


def _is_type_error(error: ErrorDetails) -> bool:
    kind = error["type"]
    # "_parsing": a GET/form value that is not of the declared type ("Limit=ten").
    return kind.endswith(("_type", "_parsing")) or kind == "int_from_float"


def _msg(error: ErrorDetails) -> str:
    return error["msg"].removeprefix("Value error, ")


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn API 3.0 flat parameters (``Tids.0=a&Tids.1=b&C.En=x``) into nested values."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.split(".")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise VendorError(Code.INVALID_PARAMETER, f"The parameter {key} is malformed.")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise VendorError(Code.INVALID_PARAMETER, f"The parameter {key} is malformed.")
        node[parts[-1]] = value
    return {k: _listify(v) for k, v in root.items()}


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {k: _listify(v) for k, v in value.items()}
    if items and all(k.isdigit() for k in items):
        indexes = sorted(int(k) for k in items)
        if indexes == list(range(len(indexes))):
            return [items[str(i)] for i in indexes]
    return items
