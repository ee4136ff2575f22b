"""What the command line prints, as pure functions: tables, durations, run details, progress;
and the parsing of its durations."""

from __future__ import annotations

import argparse
import io
import re
from datetime import UTC, datetime

import pytest

from podtask._authoring.run_results import RunHandle
from podtask._cli.cli import Progress, _run_news
from podtask._cli.cli_output import (
    age,
    attempts_table,
    duration,
    keys_list,
    keys_table,
    listed,
    manifest_table,
    progress_line,
    queues_table,
    run_details,
    runs_table,
    status_words,
    table,
)
from podtask._cli.cli_parser import parse_duration

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_a_table_aligns_columns_and_shows_none_as_a_dash() -> None:
    assert table(("id", "n"), [("run-a", 1), ("run-long", None)]).splitlines() == [
        "ID        N",
        "run-a     1",
        "run-long  -",
    ]
    assert table(("name", "access"), []) == "NAME  ACCESS"


def test_durations_and_ages_read_like_kubectls() -> None:
    assert [duration(s) for s in (None, 0.25, 4.21, 65, 3 * 3600 + 7 * 60, 2 * 86400 + 3600)] == [
        "-",
        "250ms",
        "4.2s",
        "1m05s",
        "3h07m",
        "2d01h",
    ]
    assert age("2024-05-01T11:59:48Z", NOW) == "12s"
    assert age("2024-05-01T09:00:00Z", NOW) == "3h"
    assert age("2024-04-28T12:00:00+00:00", NOW) == "3d"
    assert age(None, NOW) == "-" and age("yesterday", NOW) == "-"


def test_the_runs_table() -> None:
    runs = [
        {
            "id": "run-b",
            "taskId": "resize",
            "status": "Executing",
            "attempt": 2,
            "machine": "large-1x",
            "createdAt": "2024-05-01T11:55:00Z",
            "startedAt": "2024-05-01T11:59:30Z",
            "finishedAt": None,
            "durationMs": None,
        },
        {
            "id": "run-a",
            "taskId": "hello-world",
            "status": "Completed",
            "attempt": 1,
            "machine": "small-1x",
            "createdAt": "2024-05-01T10:00:00Z",
            "durationMs": 1500,
        },
        {"id": "run-0", "taskId": "hello-world", "status": "Pending", "attempt": 0},
    ]
    assert runs_table(runs, NOW).splitlines() == [
        "ID     TASK         STATUS     ATTEMPT  MACHINE   CREATED  DURATION",
        "run-b  resize       Executing  2        large-1x  5m       30.0s…",
        "run-a  hello-world  Completed  1        small-1x  2h       1.5s",
        "run-0  hello-world  Pending    -        -         -        -",
    ]


def test_the_queues_and_keys_tables() -> None:
    queues = [
        {"name": "emails", "concurrencyLimit": 3, "limitInForce": 3, "paused": True, "queued": 12},
        # No limit of its own: the limit in force is the operator's default.
        {"name": "resize", "concurrencyLimit": None, "limitInForce": 10, "running": 4},
        {"name": "unseen", "concurrencyLimit": None, "limitInForce": None},
    ]
    assert queues_table(queues).splitlines() == [
        "NAME    LIMIT  PAUSED  RUNNING  QUEUED",
        "emails  3      yes     0        12",
        "resize  10     no      4        0",
        "unseen  -      no      0        0",
    ]
    keys = [{"name": "ci", "access": "write", "sha256": "ab" * 32}]
    assert keys_table(keys) == "NAME  ACCESS\nci    write"


def test_run_details_show_the_output_or_the_error() -> None:
    completed = {
        "id": "run-a",
        "taskId": "hello-world",
        "version": "20240501.1",
        "status": "Completed",
        "attempt": 1,
        "machine": "small-1x",
        "queue": "greetings",
        "tags": ["vip", "docs"],
        "payload": {"name": "Ada"},
        "output": {"message": "Hello, Ada"},
        "error": None,
        "durationMs": 1200,
        "idempotencyKey": "k-1",
    }
    text = run_details(completed, NOW)
    assert "Task:             hello-world (version 20240501.1)" in text
    assert "Tags:             vip, docs" in text
    assert "Idempotency key:  k-1" in text and "Parent run" not in text
    assert text.endswith('Output:\n{\n  "message": "Hello, Ada"\n}')
    failed = {
        **completed,
        "status": "Failed",
        "output": None,
        "error": {"type": "ValueError", "message": "bad", "stack": "Traceback…\n"},
    }
    assert run_details(failed, NOW).endswith("Error:\nValueError: bad\nTraceback…")
    assert "Output:" not in run_details({**completed, "status": "Queued", "output": None}, NOW)


def test_run_details_say_a_test_run_and_show_its_metadata() -> None:
    run = {"id": "run-a", "status": "Executing", "payload": None, "isTest": True}
    text = run_details({**run, "metadata": {"progress": 0.5}}, NOW)
    assert "Test run:  yes" in text
    assert text.endswith('Metadata:\n{\n  "progress": 0.5\n}')
    plain = run_details({**run, "isTest": False, "metadata": {}}, NOW)
    assert "Test run" not in plain and "Metadata" not in plain


def local(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


ATTEMPTS = [
    {
        "number": 1,
        "pod": "run-a-1",
        "machine": "small-1x",
        "startedAt": "2024-05-01T11:00:00Z",
        "finishedAt": "2024-05-01T11:00:02.5Z",
        "exitCode": 137,
        "reason": "OOMKilled",
        "error": {"type": "OutOfMemoryError", "message": "killed\nby the kernel", "stack": "…"},
    },
    {
        "number": 2,
        "pod": "run-a-2",
        "machine": "small-2x",
        "startedAt": "2024-05-01T11:59:00Z",
        "finishedAt": None,
        "exitCode": None,
        "reason": None,
        "error": None,
    },
]


def test_the_attempts_table_lists_each_attempts_machine_times_exit_code_and_reason() -> None:
    header, first, second = attempts_table(ATTEMPTS, NOW).splitlines()
    assert header.split() == [
        "ATTEMPT",
        "MACHINE",
        "STARTED",
        "FINISHED",
        "DURATION",
        "EXIT",
        "REASON",
        "ERROR",
    ]
    # The error's first line only; the run's own error follows in full under "Error:".
    assert re.split(" {2,}", first) == [
        "1",
        "small-1x",
        local("2024-05-01T11:00:00+00:00"),
        local("2024-05-01T11:00:02+00:00"),
        "2.5s",
        "137",
        "OOMKilled",
        "OutOfMemoryError: killed",
    ]
    started = local("2024-05-01T11:59:00+00:00")
    assert re.split(" {2,}", second) == ["2", "small-2x", started, "-", "1m00s…", "-", "-", "-"]
    long = {**ATTEMPTS[1], "error": {"type": "ValueError", "message": "x" * 200}}
    cell = re.split(" {2,}", attempts_table([long], NOW).splitlines()[1])[-1]
    assert len(cell) == 60 and cell.endswith("x…")


def test_run_details_list_every_attempt_before_the_payload() -> None:
    run = {"id": "run-a", "status": "Executing", "attempt": 2, "attempts": ATTEMPTS}
    text = run_details(run, NOW)
    assert "\nAttempts:\n" + attempts_table(ATTEMPTS, NOW) + "\n\nPayload:" in text
    assert "Attempts:" not in run_details({**run, "attempts": []}, NOW)


def test_a_trigger_that_found_an_existing_run_says_so() -> None:
    new = RunHandle(id="run-a", task_id="t")
    cached = RunHandle(id="run-a", task_id="t", is_cached=True)
    assert _run_news(new, "Triggered run-a") == "Triggered run-a"
    assert _run_news(cached, "Triggered run-a") == "existing run run-a (same idempotency key)"
    assert cached.to_wire() == {"id": "run-a", "isCached": True}
    assert RunHandle.from_wire(cached.to_wire(), "t") == cached


def test_json_lists_keys_and_manifests() -> None:
    assert listed([{"name": "q"}]) == {"data": [{"name": "q"}]}
    keys = [{"name": "ci", "access": "write", "sha256": "ab" * 32}]
    assert keys_list(keys) == {"data": [{"name": "ci", "access": "write"}]}
    manifest = {
        "tasks": [
            {"id": "a", "module": "m.py", "queue": {"name": "q"}, "machine": "micro"},
            {
                "id": "b",
                "module": "m.py",
                "queue": {"name": "q"},
                "machine": "micro",
                "schedule": {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"},
            },
        ],
        "queues": [{"name": "q"}],
    }
    assert manifest_table(manifest).splitlines() == [
        "TASK  MODULE  QUEUE  MACHINE  SCHEDULE",
        "a     m.py    q      micro    -",
        "b     m.py    q      micro    0 9 * * 1-5 (Europe/Paris)",
    ]


def test_the_progress_line_and_status_words() -> None:
    assert status_words({"status": "Executing", "attempt": 2}) == "Executing (attempt 2)"
    assert status_words({"status": "Queued", "attempt": 0}) == "Queued"
    assert status_words({}) == "Pending"
    first = progress_line("run-a", {"status": "Queued"}, 3.0, 0)
    second = progress_line("run-a", {"status": "Queued"}, 3.1, 1)
    assert first.endswith("run-a  Queued  3.0s") and first[0] != second[0]


def test_durations_on_the_command_line() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "1.5m", "2h", "1d", "500ms")] == [
        90,
        90,
        90,
        7200,
        86400,
        0.5,
    ]
    for bad in ("", "5 minutes", "-3", "1y"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_duration(bad)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_wait_redraws_one_line_on_a_terminal_and_prints_changes_elsewhere() -> None:
    terminal = Terminal()
    progress = Progress("run-a", terminal)
    for _ in range(3):
        progress.show({"status": "Queued"})
    progress.done()
    frames = terminal.getvalue().split("\r\x1b[2K")
    assert frames[0] == "" and frames[-1] == ""
    assert len(frames) == 5 and all("run-a  Queued" in frame for frame in frames[1:4])
    assert len({frame[0] for frame in frames[1:4]}) == 3  # the spinner turns

    log = io.StringIO()
    plain = Progress("run-a", log)
    for status in ("Queued", "Queued", "Executing", "Executing"):
        plain.show({"status": status, "attempt": 1})
    plain.done()
    assert log.getvalue() == "run-a: Queued\nrun-a: Executing (attempt 1)\n"
