"""The cloud's secrets: owner-only files, never on the command line."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from iotvideo.cli import app
from tests.support import start_cloud


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_directory_and_its_secrets_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "url.key").write_text("0" * 64)
    (data / "url.key").chmod(0o644)  # as an older version left it
    cloud = start_cloud(data)
    try:
        assert mode(data) == 0o700
        assert mode(data / "url.key") == 0o600
        assert mode(data / "iotvideo.db") == 0o600
        assert (data / "url.key").read_text() == "0" * 64, "the key itself is kept"
    finally:
        cloud.stop()
    fresh = tmp_path / "fresh"
    cloud = start_cloud(fresh)
    try:
        assert mode(fresh) == 0o700
        assert mode(fresh / "url.key") == 0o600
        assert mode(fresh / "iotvideo.db") == 0o600
    finally:
        cloud.stop()


def test_secrets_come_from_files_or_the_environment_not_flags(tmp_path: Path) -> None:
    runner = CliRunner()
    turn = ["cloud", "--data", str(tmp_path), "--ice-url", "turn:127.0.0.1:3478"]
    refused = runner.invoke(app, [*turn, "--turn-secret", "s3cret"])
    assert refused.exit_code == 2 and "No such option" in refused.output
    missing = runner.invoke(app, turn, env={"IOTVIDEO_TURN_SECRET": ""})
    assert missing.exit_code == 2 and "--turn-secret-file" in missing.output
    empty = tmp_path / "empty"
    empty.write_text("\n")
    unreadable = runner.invoke(app, [*turn, "--turn-secret-file", str(empty)])
    assert unreadable.exit_code == 2 and "is empty" in unreadable.output
