"""The `podtask` command's flags, across every command: `--version`, and `-o/--output` on each
command that prints objects (kubectl's `-o json`, gh's `--json`)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from importlib.metadata import version

import pytest

from podtask._cli.cli import main
from podtask._cli.cli_parser import output_format, parser

# The commands that print no object: a log (text as the task wrote it), a new key (alone on
# stdout already), a revocation (a message) and the dev stack (its own output).
NO_OBJECTS = {"dev", "runs logs", "keys create", "keys revoke"}


def commands(
    command: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command and subcommand of the parser, as its words and its parser."""
    if path:
        yield path, command
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def flags(command: argparse.ArgumentParser) -> set[str]:
    return {option for action in command._actions for option in action.option_strings}


def test_podtask_version_is_the_installed_packages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"podtask {version('podtask')}\n"


def test_every_command_that_prints_objects_takes_output_json() -> None:
    leaves = {
        " ".join(words): sub
        for words, sub in commands(parser())
        if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
    }
    assert set(leaves) >= {"trigger", "runs list", "runs get", "queues list", "keys list"}
    for name, sub in leaves.items():
        has_output = {"-o", "--output", "--json"} <= flags(sub)
        assert has_output == (name not in NO_OBJECTS), name


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["runs", "list"], "text"),
        (["runs", "list", "-o", "json"], "json"),
        (["runs", "get", "run-a", "--json"], "json"),
        (["runs", "get", "run-a", "--output", "json"], "json"),
        (["queues"], "text"),
        (["queues", "-o", "json"], "json"),
        # The subcommand's absent flag does not undo its parent's.
        (["queues", "-o", "json", "list"], "json"),
        (["queues", "list", "-o", "json"], "json"),
        (["queues", "pause", "emails", "-o", "json"], "json"),
        (["index", "examples/"], "json"),
        (["index", "examples/", "-o", "text"], "text"),
        (["deploy", "--image", "i:1", "--module", "m.py", "--json"], "json"),
        (["trigger", "hello-world", "--wait", "-o", "json"], "json"),
        (["keys", "list", "-o", "json"], "json"),
    ],
)
def test_the_output_format_of_a_command_line(argv: list[str], expected: str) -> None:
    assert output_format(parser().parse_args(argv)) == expected


def test_an_unknown_output_format_is_a_misuse(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "-o", "yaml"]) == 2
    assert "invalid choice: 'yaml'" in capsys.readouterr().err


def test_replay_waits_like_trigger() -> None:
    args = parser().parse_args(["runs", "replay", "run-a", "--wait", "--timeout", "5m"])
    assert (args.wait, args.timeout) == (True, 300)
    assert not hasattr(args, "payload")  # the replayed run's payload
