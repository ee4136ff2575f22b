"""What is left of a run once it ends, end to end on both clusters: the log of each attempt,
read through the API and the CLI after its pod is gone, whatever ended it (a cancel, its
maxDuration, its pod deleted by someone); and failures no attempt can mend, which end the
run after one attempt.

Finished pods are deleted at once here (pod retention 0), so every log read after a run's
end is the copy its runner sent, as it would be an hour after any run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from podtask._contract.wire import LABEL_RUN
from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import TASK_MODULES, wait_until

MODULES = [str(TASK_MODULES / "ends.py"), str(TASK_MODULES / "breaks_in_pods.py")]


@pytest.fixture(scope="module")
def composed(
    tmp_path_factory: pytest.TempPathFactory, cluster_kind: str
) -> Iterator[ComposedStack]:
    with ComposedStack(
        tmp_path_factory.mktemp("ends"),
        MODULES,
        operator_env={
            "PODTASK_POD_RETENTION_SECONDS": "0",
            "PODTASK_HOUSEKEEPING_INTERVAL_SECONDS": "1",
        },
        cluster_kind=cluster_kind,
    ) as stack:
        yield stack


def _pods_of(composed: ComposedStack, run_id: str) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in composed.cluster.objects("pods", namespace="default")
        if (p["metadata"].get("labels") or {}).get(LABEL_RUN) == run_id
    ]


def _log(composed: ComposedStack, run_id: str, attempt: int | None = None) -> str:
    params = {} if attempt is None else {"attempt": attempt}
    with composed.http() as http:
        response = http.get(f"/api/v1/runs/{run_id}/logs", params=params)
    assert response.status_code == 200, response.text
    return response.text


def _cli_log(composed: ComposedStack, run_id: str, *args: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")}
    done = subprocess.run(
        [sys.executable, "-m", "podtask._cli.cli", "runs", "logs", run_id, *args],
        env={**clean, "PODTASK_API_URL": composed.api_url, "PODTASK_API_KEY": composed.api_key},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _said(composed: ComposedStack, run_id: str, line: str) -> bool:
    with composed.http() as http:
        response = http.get(f"/api/v1/runs/{run_id}/logs")
    return response.status_code == 200 and line in response.text


def _ended_and_gone(composed: ComposedStack, run_id: str) -> dict[str, Any]:
    run = composed.wait_for(run_id, timeout=120)
    wait_until(lambda: not _pods_of(composed, run_id), timeout=120)
    return run


def test_a_canceled_runs_log_is_read_after_its_pod_is_gone(composed: ComposedStack) -> None:
    run_id = composed.trigger("says-then-waits", {"seconds": 120})
    wait_until(lambda: _said(composed, run_id, "attempt 1 says hello"), timeout=120)
    with composed.http() as http:
        assert http.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
    assert _ended_and_gone(composed, run_id)["status"] == "Canceled"

    log = _log(composed, run_id)
    assert "attempt 1 says hello" in log
    assert "TaskTerminatedError" in log
    # The runner's last line: plain, not a failed report.
    assert log.rstrip("\n").endswith(
        f"attempt 1 of run {run_id} has ended (the run finished as Canceled); nothing to report"
    )
    assert "could not report" not in log
    assert _cli_log(composed, run_id) == log


def test_a_timed_out_runs_log_is_read_after_its_pod_is_gone(composed: ComposedStack) -> None:
    run_id = composed.trigger("says-then-oversleeps", {})
    run = _ended_and_gone(composed, run_id)
    assert run["status"] == "TimedOut"
    log = _log(composed, run_id)
    assert "about to oversleep" in log
    assert "MaxDurationExceededError" in log
    assert "could not report" not in log
    assert _cli_log(composed, run_id) == log


def test_the_log_of_an_attempt_whose_pod_was_deleted_stays(composed: ComposedStack) -> None:
    run_id = composed.trigger("says-then-waits", {"seconds": 120})
    wait_until(lambda: _said(composed, run_id, "attempt 1 says hello"), timeout=120)
    # Someone deletes the pod: the attempt is lost, and retried.
    composed.kubectl("delete", "pod", f"{run_id}-1", "--wait=false")
    run = _ended_and_gone(composed, run_id)
    assert run["status"] == "Completed"
    assert run["attempts"][0]["reason"] != "Completed" and len(run["attempts"]) == 2

    first = _log(composed, run_id, attempt=1)
    assert "attempt 1 says hello" in first
    assert "TaskTerminatedError" in first
    assert _cli_log(composed, run_id, "--attempt", "1") == first
    second = _log(composed, run_id)
    assert "attempt 2 says hello" in second and "attempt 1 says hello" not in second


def _failed_at_once(composed: ComposedStack, task_id: str) -> tuple[str, dict[str, Any]]:
    """Trigger `task_id` (which allows 3 attempts): its run and error once it failed on 1."""
    run_id = composed.trigger(task_id, {})
    run = _ended_and_gone(composed, run_id)
    assert run["status"] == "Failed"
    assert len(run["attempts"]) == 1, run["attempts"]
    return run_id, run["error"]


def test_output_that_is_not_json_is_not_retried(composed: ComposedStack) -> None:
    run_id, error = _failed_at_once(composed, "returns-a-set-thrice")
    assert error["type"] == "OutputNotSerializableError"
    assert "returns-a-set-thrice" in error["message"] and "not JSON" in error["message"]
    assert "returning a set" in _log(composed, run_id)


def test_a_module_that_does_not_import_in_its_pod_is_not_retried(
    composed: ComposedStack,
) -> None:
    run_id, error = _failed_at_once(composed, "breaks-on-import-in-pods")
    assert error["type"] == "TaskModuleImportError"
    assert "breaks_in_pods.py" in error["message"]
    assert "a_dependency_the_image_lacks" in error["message"]
    assert "TaskModuleImportError" in _log(composed, run_id)


def test_a_task_its_module_does_not_declare_is_not_retried(composed: ComposedStack) -> None:
    # A Task whose module (the image's) has no task of its id: as a deploy of the wrong image.
    task = json.loads(composed.kubectl("get", "task", "says-then-waits", "-o", "json"))
    task["metadata"] = {"name": "not-in-the-module", "labels": task["metadata"].get("labels")}
    task["spec"]["taskId"] = "not-in-the-module"
    task.pop("status", None)
    composed.kubectl("create", "-f", "-", stdin=json.dumps(task))
    _, error = _failed_at_once(composed, "not-in-the-module")
    assert error["type"] == "TaskNotFoundError"
    assert "not-in-the-module" in error["message"]
    assert "says-then-waits" in error["message"]  # what the module does declare
