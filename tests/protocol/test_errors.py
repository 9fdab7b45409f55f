"""The error tree holds every code of the seed's tables, under the seed's names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iotvideo.protocol.errors import (
    AckError,
    ConnError,
    DownloadError,
    ErrorCode,
    IVError,
    MessageError,
    NetCfgError,
    PlayerError,
    ServerError,
    TermError,
    describe,
)

# The guide's error-code section, kept in the repository (tests/data).
SPEC = Path(__file__).resolve().parents[1] / "data" / "seed-error-codes.md"
_ROW = re.compile(r"^\|\s*(IV[A-Za-z_]+)\s*\|\s*(\d+)\s*\|", re.MULTILINE)


def _seed_codes() -> dict[str, int]:
    text = SPEC.read_text(encoding="utf-8")
    return {name: int(code) for name, code in _ROW.findall(text)}


def test_every_code_of_the_seed_is_there_under_its_name() -> None:
    seed = _seed_codes()
    assert len(seed) > 80, "the spec's tables were read"
    for name, code in seed.items():
        assert ErrorCode[name] == code
        assert describe(code) != "unknown error"


@pytest.mark.parametrize(
    ("code", "family"),
    [
        (8000, ServerError),
        (8605, ServerError),
        (20007, TermError),
        (21002, MessageError),
        (21024, ConnError),
        (21034, PlayerError),
        (21062, DownloadError),
        (21084, AckError),
        (21101, NetCfgError),
    ],
)
def test_of_picks_the_family(code: int, family: type[IVError]) -> None:
    error = IVError.of(code, "details")
    assert type(error) is family
    assert error.code == code and error.message == "details"
    assert error.code_name == ErrorCode(code).name
    assert str(error) == f"{ErrorCode(code).name} ({code}): details"


def test_unknown_codes_still_carry_their_number() -> None:
    error = IVError.of(99999)
    assert type(error) is IVError
    assert error.code == 99999 and error.code_name == "code_99999"
    assert error.to_json() == {"code": 99999, "name": "code_99999", "msg": "unknown error"}


def test_default_message_is_the_seed_meaning() -> None:
    error = IVError.of(ErrorCode.IVMessageError_ExceedsMaxLength)
    assert error.message == describe(21008)
    assert error.to_json()["name"] == "IVMessageError_ExceedsMaxLength"
