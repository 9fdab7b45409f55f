"""docs/errors.md lists every code of the seed's tables, and says truthfully where
iotvideo reports each one (the modules that name it) or that it never does."""

from __future__ import annotations

import re
from pathlib import Path

from iotvideo.protocol.errors import ErrorCode

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "iotvideo"
ROW = re.compile(r"^\| (?P<code>\d+) \| `(?P<name>\w+)` \| (?P<meaning>[^|]+) \| (?P<where>.+) \|$")


def modules_naming(name: str) -> set[str]:
    pattern = re.compile(rf"ErrorCode\.{name}\b")
    found = set()
    for path in SRC.rglob("*.py"):
        if pattern.search(path.read_text()):
            found.add(".".join(path.relative_to(SRC).with_suffix("").parts))
    return found - {"protocol.errors"}


def test_every_code_is_documented_with_where_it_is_reported() -> None:
    rows = {}
    for line in (ROOT / "docs" / "errors.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match["name"]] = match
    assert set(rows) == {c.name for c in ErrorCode}, "every ErrorCode, and nothing else"
    for code in ErrorCode:
        row = rows[code.name]
        assert int(row["code"]) == int(code), code.name
        used = modules_naming(code.name)
        if row["where"].startswith("Not produced: "):
            assert not used, f"{code.name} is produced by {sorted(used)}: update docs/errors.md"
            assert len(row["where"]) > 40, f"{code.name}: say why it is not produced"
        else:
            listed = set(re.findall(r"`([\w.]+)`", row["where"]))
            assert listed == used, f"{code.name}: docs/errors.md lists {listed}, the code {used}"
