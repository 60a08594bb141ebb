"""Every command and subcommand of `whatsapp-handler` has --help, found by walking the parser
(so a command added later is covered without a test of its own), and a usage error is one line
and exit 2. In-process: fast."""

from __future__ import annotations

import argparse

import pytest

from app import cli


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"`{' '.join((*path, name))}` has no help line in its parent's --help"
                found += _walk(sub, (*path, name))
    return found


COMMANDS = _walk(cli.build_parser())


def _needs_subcommand(path: tuple[str, ...]) -> bool:
    return any(other[: len(path)] == path and len(other) > len(path) for other in COMMANDS)


def test_the_walk_finds_every_command() -> None:
    top = {path[0] for path in COMMANDS if path}
    assert top == {
        "db",
        "cluster",
        "serve",
        "worker",
        "dlq",
        "doctor",
        "smoke",
        "sandbox",
        "api-key",
        "templates",
        "campaign",
    }
    assert ("dlq", "replay") in COMMANDS and ("db", "revert") in COMMANDS and ("campaign", "watch") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "whatsapp-handler")
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*path, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"usage: whatsapp-handler {' '.join(path)}".rstrip())
    assert "-h, --help" in out.out
    assert out.err == ""


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "whatsapp-handler")
def test_a_usage_error_is_one_line_and_exit_2(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    # A command with subcommands is refused without one; every command refuses an unknown option.
    argv = list(path) if _needs_subcommand(path) else [*path, "--no-such-option"]
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("whatsapp-handler: error: ")
