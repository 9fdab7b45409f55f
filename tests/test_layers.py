"""The layer rule, checked by real imports::

    protocol <- transport <- device | app
    protocol <- media <- cloud | device | app


Each module is imported alone in a fresh interpreter and the iotvideo modules that import
pulled in are compared with what its layer may use.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import iotvideo

ALLOWED = {
    "protocol": {"protocol"},
    "transport": {"protocol", "transport"},
    "media": {"protocol", "media"},
    "cloud": {"protocol", "media", "cloud"},
    "device": {"protocol", "transport", "media", "device"},
    "app": {"protocol", "transport", "media", "app"},
}

_PROBE = (
    "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('iotvideo.'))))"
)


def _modules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.walk_packages(iotvideo.__path__, "iotvideo.")
        if m.name != "iotvideo.__main__"
    )


def _imports(module: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module], capture_output=True, text=True, check=True
    )
    return list(json.loads(out.stdout))


def _layer(module: str) -> str:
    return module.split(".")[1].removesuffix(".py")


def test_every_module_respects_its_layer() -> None:
    modules = [m for m in _modules() if _layer(m) in ALLOWED]
    assert {_layer(m) for m in modules} >= {"protocol", "cloud"}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(modules, pool.map(_imports, modules), strict=True))
    problems = []
    for module, imported in results.items():
        allowed = ALLOWED[_layer(module)]
        bad = [m for m in imported if _layer(m) not in allowed]
        if bad:
            problems.append(f"{module} imports {bad}")
    assert not problems, "\n".join(problems)


def test_the_probe_sees_what_a_module_pulls_in() -> None:
    """The check itself works: it sees modules imported directly and transitively."""
    imported = _imports("iotvideo.cloud.server")
    assert "iotvideo.cloud.app" in imported
    assert "iotvideo.protocol.tc3" in imported


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_exist(layer: str) -> None:
    assert any(m == f"iotvideo.{layer}" for m in _modules())


def test_the_home_assistant_integration_is_an_app_side_consumer() -> None:
    """custom_components/iotvideo (which needs Home Assistant, not in this venv) imports
    only what an app may use; what those modules pull in is checked above."""
    import ast
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "custom_components" / "iotvideo"
    seen: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                if name.startswith("iotvideo."):
                    seen.setdefault(path.name, set()).add(name)
    assert seen, "the integration uses the app SDK"
    bad = {
        file: sorted(m for m in modules if _layer(m) not in ALLOWED["app"])
        for file, modules in seen.items()
    }
    assert not any(bad.values()), bad
