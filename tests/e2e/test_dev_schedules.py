"""`podtask dev` registers a task's declared schedule as its DECLARATIVE TaskSchedule, which
`kubectl get taskschedules` lists (TASK, CRON, TIMEZONE, ACTIVE, LAST, NEXT, AGE); a saved
change of the declaration replaces it, keeping a deactivation, and a declaration removed on
reload deletes it. On both clusters."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podtask._cli.devprocess import save_as_an_editor
from tests.e2e.conftest import Stack, module_stack, wait_until

MODULE = """\
from podtask import task


@task(id="scheduled-digest"SCHEDULE)
def digest(payload, ctx):
    return payload
"""
COLUMNS = ["NAME", "TASK", "CRON", "TIMEZONE", "ACTIVE", "LAST", "NEXT", "AGE"]
# Generous: a deadline, not a measure.
REGISTERED_SECONDS = 60


def _module(schedule: str | None) -> str:
    return MODULE.replace("SCHEDULE", "" if schedule is None else f", schedule={schedule}")


@pytest.fixture(scope="module")
def scheduling(tmp_path_factory: pytest.TempPathFactory, cluster_kind: str) -> Iterator[Stack]:
    source = _module('{"cron": "30 2 * * *", "timezone": "America/New_York"}')
    with module_stack(tmp_path_factory, "scheduled_tasks.py", source, cluster_kind) as stack:
        yield stack


def _kubectl(stack: Stack, *args: str) -> str:
    done = subprocess.run(
        ["kubectl", *args], env=stack.kube_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _schedules(stack: Stack) -> dict[str, dict[str, Any]]:
    listed = json.loads(_kubectl(stack, "get", "taskschedules", "-o", "json"))
    return {item["metadata"]["name"]: item for item in listed["items"]}


def _save(stack: Stack, source: str) -> None:
    save_as_an_editor(Path(stack.dev.modules[0]), source)


def test_a_declared_schedule_is_registered_replaced_and_removed_on_reload(
    scheduling: Stack,
) -> None:
    stack = scheduling
    schedule = _schedules(stack)["scheduled-digest"]
    assert schedule["spec"] == {
        "taskId": "scheduled-digest",
        "cron": "30 2 * * *",
        "timezone": "America/New_York",
        "type": "DECLARATIVE",
        "active": True,
    }
    assert schedule["metadata"]["labels"]["podtask.dev/task"] == "scheduled-digest"
    table = _kubectl(stack, "get", "taskschedules").splitlines()
    assert table[0].split() == COLUMNS
    row = table[1].split()
    cells = ["scheduled-digest", "scheduled-digest", "30", "2", "*", "*", "*"]
    assert row[:9] == [*cells, "America/New_York", "true"]
    # Its short name and category, as the other podtask resources.
    assert "scheduled-digest" in _kubectl(stack, "get", "tsched")
    assert "taskschedule.podtask.dev/scheduled-digest" in _kubectl(stack, "get", "podtask")

    # Deactivated by hand; then the declaration changes: the cron and zone follow it, the
    # deactivation stays.
    _kubectl(
        stack,
        "patch",
        "taskschedule",
        "scheduled-digest",
        "--type=merge",
        "-p",
        '{"spec": {"active": false}}',
    )
    _save(stack, _module('"0 3 * * 1-5"'))
    changed = wait_until(
        lambda: (
            (s := _schedules(stack).get("scheduled-digest"))
            and s["spec"]["cron"] != "30 2 * * *"
            and s
        ),
        timeout=REGISTERED_SECONDS,
    )
    assert changed["spec"]["cron"] == "0 3 * * 1-5"
    assert changed["spec"]["timezone"] == "UTC"
    assert changed["spec"]["active"] is False
    wait_until(lambda: "task scheduled-digest changed: schedule" in "".join(stack.dev.output))
    assert "schedule '30 2 * * *' (America/New_York) → '0 3 * * 1-5' (UTC)" in "".join(
        stack.dev.output
    )

    # The declaration removed: its TaskSchedule goes; the task stays.
    _save(stack, _module(None))
    wait_until(lambda: "scheduled-digest" not in _schedules(stack), timeout=REGISTERED_SECONDS)
    assert (
        "No resources found"
        in subprocess.run(
            ["kubectl", "get", "taskschedules"],
            env=stack.kube_env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stderr
    )
    tasks = stack.http.get("/api/v1/tasks").json()["data"]
    assert [task["id"] for task in tasks] == ["scheduled-digest"]
