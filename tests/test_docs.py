"""The docs name what the code does: every vendor action the cloud serves, every setting."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from iotvideo.cloud.settings import CloudSettings
from iotvideo.cloud.vendor import VendorApi, register_all

ROOT = Path(__file__).resolve().parents[1]


def served_actions() -> list[str]:
    api = VendorApi(None, clock=time.time)  # type: ignore[arg-type]  # never runs a request
    register_all(api)
    return api.actions


def test_the_cloud_serves_the_actions_we_count() -> None:
    assert len(served_actions()) >= 36


@pytest.mark.parametrize("doc", ["README.md", "docs/vendor-api.md"])
def test_every_served_action_is_documented(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    missing = [a for a in served_actions() if not re.search(rf"\b{a}\b", text)]
    assert not missing, f"{doc} does not name {missing}"


def test_the_settings_table_has_every_setting_with_its_default() -> None:
    rows = {
        m["var"]: m["default"]
        for m in re.finditer(
            r"^\|[^|]*\| `(?P<var>IOTVIDEO_[A-Z_]+)` \| (?P<default>[^|]*) \|",
            (ROOT / "docs/ops.md").read_text(encoding="utf-8"),
            re.MULTILINE,
        )
    }
    for name, field in CloudSettings.model_fields.items():
        variable = f"IOTVIDEO_{name.upper()}"
        assert variable in rows, f"docs/ops.md lacks {variable}"
        if field.is_required() or field.default is None:
            continue
        default = field.get_default(call_default_factory=True)
        assert f"`{default}`" in rows[variable], (variable, rows[variable], default)
    assert set(rows) <= {f"IOTVIDEO_{n.upper()}" for n in CloudSettings.model_fields}
