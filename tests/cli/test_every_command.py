"""Every `iotvideo` command, given bad input, says what is wrong (and never a traceback);
every command's help is written for users."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from iotvideo.cli import app

ROOT = typer.main.get_command(app)
# Commands that would browse the real LAN (multicast) when their input is valid.
LAN = {("app", "lan", "list"), ("app", "lan", "send-wifi")}


def commands(
    group: click.Command = ROOT, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    if isinstance(group, click.Group):
        for name, sub in sorted(group.commands.items()):
            yield from commands(sub, (*prefix, name))
    else:
        yield prefix, group


ALL = dict(commands())


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Credentials and places that are all wrong: a cloud nobody listens on, a data
    directory that is a file."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("not a directory")
    return {
        "IOTVIDEO_CLOUD": "http://127.0.0.1:9",
        "IOTVIDEO_ACCESS_ID": "1",
        "IOTVIDEO_ACCESS_TOKEN": "usr_bad",
        "IOTVIDEO_SECRET_ID": "AKIDbad",
        "IOTVIDEO_SECRET_KEY": "bad",
        "IOTVIDEO_DATA": str(not_a_dir),
        "IOTVIDEO_ICE_ADDRESSES": "127.0.0.1",
    }


def bad_value(param: click.Parameter, tmp_path: Path) -> str:
    """A value of the right shape that cannot work."""
    name = param.name or ""
    if name in ("cert", "file", "model_file", "scan"):
        return str(tmp_path / "missing.file")
    if name in ("out", "output"):
        return str(tmp_path / "no" / "such" / "dir" / "x.jpg")
    if name == "base_url":
        return "ftp://nowhere"
    if name == "interface":
        return "not-an-address"
    if isinstance(param.type, click.Choice):
        return str(param.type.choices[0])
    if isinstance(param.type, click.types.IntParamType | click.types.FloatParamType):
        return "1"
    return "bad"


def filled(command: click.Command, tmp_path: Path) -> list[str]:
    args: list[str] = []
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            args.append(bad_value(param, tmp_path))
        elif isinstance(param, click.Option) and (param.required or param.name == "interface"):
            args += [param.opts[0], bad_value(param, tmp_path)]
    return args


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env=env, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"iotvideo {' '.join(args)} raised {result.exception!r}") from (
            result.exception
        )
    output = result.output
    assert "Traceback" not in output, output
    return result.exit_code, output


@pytest.mark.parametrize("path", sorted(ALL), ids=" ".join)
def test_bad_input_gets_a_message_not_a_traceback(
    path: tuple[str, ...], env: dict[str, str], tmp_path: Path
) -> None:
    command = ALL[path]
    code, out = run([*path, "--no-such-option"], env)
    assert code == 2 and "No such option" in out
    if path in (("device", "model"), ("gateway", "model")):  # print models: no input to get wrong
        return
    if path not in LAN:
        code, out = run(list(path), env)
        assert code != 0, out
        assert out.strip(), "says what is wrong"
    code, out = run([*path, *filled(command, tmp_path)], env)
    assert code != 0, out
    assert out.strip(), "says what is wrong"


def test_bad_choices_are_refused_with_the_choices(env: dict[str, str]) -> None:
    code, out = run(["device", "run", "--cert", "x", "--cloud", "x", "--log-level", "verbose"], env)
    assert code == 2 and "debug" in out and "verbose" in out
    code, out = run(["app", "play", "TID", "--definition", "huge"], env)
    assert code == 2 and "low" in out and "huge" in out
    code, out = run(["cloud", "--data", ".", "--log-level", "verbose"], env)
    assert code == 2 and "verbose" in out


@pytest.mark.parametrize("path", sorted(ALL), ids=" ".join)
def test_help_is_written_for_users(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    text = result.output
    # Python types and jargon mean nothing to a user.
    assert not re.search(r"<(str|bool|int|float|Path|list)\b", text), text
    assert "seed" not in text.lower(), text
    assert ALL[path].help, "every command says what it does"
    # An environment variable is named once, by the option that reads it.
    for variable in set(re.findall(r"IOTVIDEO_[A-Z_]+", text)):
        assert text.count(variable) == 1 or "Env:" not in text, (variable, text)


def test_placeholders_survive_in_help() -> None:
    result = CliRunner().invoke(app, ["app", "prop", "add", "--help"], env={"COLUMNS": "120"})
    assert "ProUser.NAME" in result.output


def test_the_root_help_lists_every_group_and_completion() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"})
    for group in ("cloud", "keys", "db", "vendor", "app", "device", "gateway"):
        assert group in result.output
    assert "--install-completion" in result.output
