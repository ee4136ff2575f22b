"""A schedule made on the command line against `podtask dev` triggers its task's run at its
next tick, with Trigger.dev's scheduled payload saying it is IMPERATIVE and carrying its
externalId; the run is listed by the schedule; deactivated, then deleted. The task's own
declared schedule is listed as DECLARATIVE and cannot be changed here. On both clusters."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

from podtask._contract.schedules import MAX_UPCOMING
from tests.e2e.conftest import FINAL, Stack, wait_until
from tests.e2e.test_cli import podtask

# A minute's tick, the run's start and end, on a loaded machine: a deadline, not a measure.
TICK_DEADLINE = 240


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_schedule_made_on_the_command_line_runs_its_task(stack: Stack) -> None:
    # examples/weekly_report.py: its payload's timestamps are its output.
    created = podtask(
        stack,
        *("schedules", "create", "weekly-report", "--cron", "* * * * *"),
        *("--external-id", "tenant-1", "--deduplication-key", f"e2e-{uuid.uuid4().hex}"),
    )
    assert created.returncode == 0, created.stderr
    ident = created.stdout.strip()
    try:

        def finished_run() -> dict[str, Any] | None:
            listed = _json(podtask(stack, "runs", "list", "--schedule", ident, "-o", "json"))
            done = [run for run in listed["data"] if run["status"] in FINAL]
            return stack.run(done[-1]["id"]) if done else None

        run = wait_until(finished_run, timeout=TICK_DEADLINE)
        assert run["status"] == "Completed", run
        payload = run["payload"]
        assert (payload["type"], payload["scheduleId"], payload["externalId"]) == (
            "IMPERATIVE",
            ident,
            "tenant-1",
        )
        assert payload["timezone"] == "UTC" and len(payload["upcoming"]) == MAX_UPCOMING
        assert run["output"]["to"] == payload["timestamp"] and run["output"]["schedule"] == ident
        assert run["tags"] == [ident]

        shown = wait_until(
            lambda: (
                (s := _json(podtask(stack, "schedules", "get", ident, "-o", "json")))["lastRunId"]
                and s
            ),
            timeout=60,
        )
        assert shown["lastRun"] is not None and shown["type"] == "IMPERATIVE"
        off = _json(podtask(stack, "schedules", "deactivate", ident, "-o", "json"))
        assert (off["active"], off["nextRun"]) == (False, None)
    finally:
        deleted = podtask(stack, "schedules", "delete", ident)
        assert deleted.returncode == 0, deleted.stderr
    assert ident not in {
        s["id"] for s in _json(podtask(stack, "schedules", "list", "--json"))["data"]
    }


def test_the_declared_schedule_is_listed_and_changed_only_where_it_is_declared(
    stack: Stack,
) -> None:
    declared = _json(podtask(stack, "schedules", "list", "--type", "DECLARATIVE", "-o", "json"))
    by_id = {s["id"]: s for s in declared["data"]}
    assert by_id["weekly-report"]["timezone"] == "Europe/Paris"
    refused = podtask(stack, "schedules", "update", "weekly-report", "--cron", "@daily")
    assert refused.returncode == 1 and "declarative_schedule" in refused.stderr
    assert "change it where the task declares it" in refused.stderr
