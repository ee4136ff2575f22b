"""A run's metadata while its task runs, and test runs, end to end through `podtask dev` on
both clusters: the example task `report-progress` (examples/report_progress.py) moves its
`progress` from 0 to 1, and the API shows it moving while the run executes; a run triggered
as a test sees `ctx.is_test`, and lists show it apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.e2e.conftest import FINAL, Stack, wait_until


def test_the_progress_a_task_reports_is_seen_moving_while_it_runs(stack: Stack) -> None:
    run_id = stack.trigger("report-progress", {"steps": 8, "seconds": 0.5})
    seen: list[float] = []  # each value of `progress` the API showed while the run executed

    def ended() -> dict[str, Any] | None:
        run = stack.run(run_id)
        progress = run["metadata"].get("progress")
        if run["status"] == "Executing" and progress is not None and progress not in seen:
            seen.append(progress)
        return run if run["status"] in FINAL else None

    run = wait_until(ended, timeout=180, interval=0.05)
    assert run["status"] == "Completed", run
    assert len(seen) >= 2 and seen == sorted(seen), seen
    assert run["metadata"]["progress"] == 1
    assert run["metadata"]["finished"] == list(range(1, 9))
    assert run["metadata"]["status"] == "step 8 of 8"
    assert run["output"] == {"steps": 8, "progress": 1, "isTest": False}
    assert run["isTest"] is False


def _podtask(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")}
    return subprocess.run(
        [sys.executable, "-m", "podtask._cli.cli", *args],
        env={**clean, "PODTASK_API_URL": stack.dev.api_url, "PODTASK_API_KEY": stack.dev.api_key},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_test_run_knows_it_is_one_and_lists_show_it_apart(stack: Stack) -> None:
    triggered = _podtask(
        stack, "trigger", "report-progress", "--payload", '{"steps": 1, "seconds": 0}', "--test"
    )
    assert triggered.returncode == 0, triggered.stderr
    test_run = triggered.stdout.strip()
    plain = stack.trigger("report-progress", {"steps": 1, "seconds": 0})
    done = stack.wait_for(test_run, timeout=120)
    assert done["status"] == "Completed", done
    assert done["output"]["isTest"] is True and done["isTest"] is True
    assert stack.wait_for(plain, timeout=120)["output"]["isTest"] is False

    listed = _podtask(stack, "runs", "list", "--test", "--limit", "100", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    ids = {run["id"] for run in json.loads(listed.stdout)["data"]}
    assert test_run in ids and plain not in ids
    others = stack.http.get("/api/v1/runs", params={"isTest": "false", "limit": 100}).json()
    assert plain in {run["id"] for run in others["data"]}
    assert test_run not in {run["id"] for run in others["data"]}
