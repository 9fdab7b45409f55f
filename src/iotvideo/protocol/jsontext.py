"""JSON as the wire carries it: what ``json`` accepts beyond the standard is refused.

Python's ``json`` reads ``NaN`` and ``Infinity``, turns ``1e999`` into infinity and
``"\\ud800"`` into a string no UTF-8 encoder takes. A value like that, once stored, would
be sent on as invalid JSON (or not at all): refuse it where it comes in.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["MAX_DEPTH", "Unrepresentable", "check", "loads"]

#: Deepest nesting a value may have.
MAX_DEPTH = 64


class Unrepresentable(ValueError):
    """Valid JSON syntax for a value JSON cannot carry: a non-finite number, a string
    that is not Unicode."""


def loads(text: str | bytes) -> Any:
    """Parse standard JSON; :class:`ValueError` for anything else (or too deep)."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    check(value)
    return value


def check(value: Any, depth: int = 0) -> None:
    """:class:`Unrepresentable` if ``value`` holds a non-finite number or a string that is
    not valid Unicode; :class:`ValueError` if it nests deeper than :data:`MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise Unrepresentable("numbers must be finite")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, list):
        for item in value:
            check(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            check(item, depth + 1)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Unrepresentable("strings must be valid Unicode (no lone surrogates)") from None
