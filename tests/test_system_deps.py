"""scripts/system-deps.sh: what `make test` and `make demo` install on a fresh machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "system-deps.sh"


def run_as_user_without(tmp_path: Path, what: str) -> subprocess.CompletedProcess[str]:
    """The script as a non-root user on a machine that has none of the tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    return subprocess.run(
        ["/bin/bash", str(SCRIPT), what],
        env={"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_root_it_prints_the_exact_command_and_stops(tmp_path: Path) -> None:
    done = run_as_user_without(tmp_path, "test")
    assert done.returncode == 1
    command = next(line for line in done.stderr.splitlines() if "apt-get install" in line)
    for package in ("ffmpeg", "coturn", "avahi-daemon", "avahi-utils", "iproute2", "dbus"):
        assert f" {package}" in command
    assert command.strip().startswith("sudo apt-get update && sudo apt-get install -y")


def test_the_demo_needs_less(tmp_path: Path) -> None:
    done = run_as_user_without(tmp_path, "demo")
    assert done.returncode == 0, done.stderr  # this Python has venv; nothing else is needed


def test_on_this_machine_everything_is_there() -> None:
    done = subprocess.run(
        ["/bin/bash", str(SCRIPT), "test"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Installing" not in done.stderr
