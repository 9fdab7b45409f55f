"""The docs name what the code does: every vendor action the cloud serves, every setting."""

from __future__ import annotations

import inspect
import re
import time
from pathlib import Path

import pytest
from tencentcloud.iotvideo.v20191126 import models as official_models
from tencentcloud.iotvideo.v20191126.iotvideo_client import IotvideoClient

from iotvideo.cloud.settings import CloudSettings
from iotvideo.cloud.vendor import VendorApi, register_all

ROOT = Path(__file__).resolve().parents[1]


def served_actions() -> list[str]:
    api = VendorApi(None, clock=time.time)  # type: ignore[arg-type]  # never runs a request
    register_all(api)
    return api.actions


def official_actions() -> set[str]:
    """Every action of the official client the suite installs."""
    return {
        name
        for name, _ in inspect.getmembers(IotvideoClient, inspect.isfunction)
        if name[0].isupper()
    }


def test_the_cloud_serves_every_action_of_the_official_client() -> None:
    official = official_actions()
    assert len(official) == 68
    missing = sorted(official - set(served_actions()))
    assert not missing, f"the official client has {missing}, which the cloud does not serve"
    assert set(served_actions()) <= official, "an action the official client does not have"


def test_every_action_takes_every_parameter_of_the_official_model() -> None:
    """A parameter the client sends is never UnknownParameter, nor one we made up."""
    api = VendorApi(None, clock=time.time)  # type: ignore[arg-type]  # never runs a request
    register_all(api)
    for name in served_actions():
        request = getattr(official_models, f"{name}Request")()
        official = {key[1:] for key in vars(request) if key.startswith("_")}
        ours = set(api.params_of(name).model_fields)
        assert ours == official, (name, sorted(official ^ ours))


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
