"""The TaskRun budget of `podtask.limits` holds: the largest TaskRun the limits let in,
built by the functions that make each part (the API's trigger and report, the operator's
attempts), stays under `MAX_TASK_RUN_BYTES` as Kubernetes stores it, and that under etcd's
1.5 MiB. Every part is filled with what costs most stored (`<` takes 6 bytes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podtask.json_values import compact_json, stored_size
from podtask.limits import (
    ETCD_MAX_REQUEST_BYTES,
    MAX_ATTEMPTS,
    MAX_ERROR_BYTES,
    MAX_METADATA_BYTES,
    MAX_OUTPUT_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_TASK_RUN_BYTES,
    attempt_error_bytes,
)
from podtask.resources import (
    AttemptReport,
    QueueRef,
    RetryPolicy,
    TaskRunSpec,
    TaskRunStatus,
    TaskSpec,
)
from podtask_api.reports import CompletionReport, attempt_report
from podtask_api.triggers import TriggerRequest, build_task_run, encoded_size
from podtask_operator.attempts import classify_attempt
from podtask_operator.lifecycle import end_attempt, start_attempt

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
COSTLY = "<"  # 1 character, 6 bytes stored (\u003c)


def _filling(limit: int) -> str:
    """A string whose JSON is as close to `limit` stored bytes as it gets."""
    return COSTLY * ((limit - 2) // 6)


def _pod(exit_code: int) -> dict[str, Any]:
    terminated = {"exitCode": exit_code, "reason": "Error", "message": COSTLY * 100_000}
    return {
        "status": {
            "phase": "Failed" if exit_code else "Succeeded",
            "containerStatuses": [{"state": {"terminated": terminated}}],
        }
    }


def _largest_run(ends_ok: bool) -> dict[str, Any]:
    task = TaskSpec(
        task_id="t" * 63,
        image="registry.local/" + "i" * 200,
        module="m" * 200,
        version="v" * 63,
        retry=RetryPolicy(max_attempts=MAX_ATTEMPTS),
        queue=QueueRef(name="q" * 63, concurrency_limit=2),
        machine="large-2x",
        max_duration_seconds=300,
    )
    metadata = {"k": _filling(MAX_METADATA_BYTES - 8)}
    request = TriggerRequest.model_validate(
        {
            "payload": _filling(MAX_PAYLOAD_BYTES),
            "options": {
                "metadata": metadata,
                "tags": [COSTLY * 128] * 10,
                "idempotencyKey": COSTLY * 1024,
                "concurrencyKey": COSTLY * 256,
            },
        }
    )
    assert encoded_size(request.payload, "payload") <= MAX_PAYLOAD_BYTES
    run = build_task_run(task, request, "run-" + "x" * 40, parent_run_id="run-" + "p" * 40)
    spec = TaskRunSpec.model_validate(run["spec"])
    status = TaskRunStatus()
    huge = {"type": "E" * 10_000, "message": COSTLY * 100_000, "stack": COSTLY * 1_000_000}
    now = NOW
    for number in range(1, MAX_ATTEMPTS + 1):
        status = start_attempt(run["metadata"]["name"], spec, status, now)
        last = number == MAX_ATTEMPTS
        if last and ends_ok:
            output = _filling(MAX_OUTPUT_BYTES)
            report = CompletionReport(ok=True, output=output)
        else:
            report = CompletionReport.model_validate({"ok": False, "error": huge})
        stored = attempt_report(report, number)
        status = status.model_copy(update={"report": AttemptReport.model_validate(stored)})
        result = classify_attempt(_pod(0 if report.ok else 1), status.report, number)
        assert result is not None
        now += timedelta(seconds=1)
        status = end_attempt(spec, status, result, now).status
    run["status"] = status.to_wire()
    return run


@pytest.mark.parametrize("ends_ok", [True, False], ids=["completed", "failed"])
def test_the_largest_task_run_the_limits_allow_fits_the_budget(ends_ok: bool) -> None:
    run = _largest_run(ends_ok)
    status = run["status"]
    assert len(status["attempts"]) == MAX_ATTEMPTS
    share = attempt_error_bytes(MAX_ATTEMPTS)
    for attempt in status["attempts"]:
        if attempt.get("error"):
            assert stored_size(compact_json(attempt["error"])) <= share
    if status.get("error"):
        assert stored_size(compact_json(status["error"])) <= MAX_ERROR_BYTES
    if ends_ok:
        assert status["phase"] == "Completed"
        assert status["report"].get("output") is None  # the output is held once
    size = stored_size(compact_json(run))
    assert size <= MAX_TASK_RUN_BYTES < ETCD_MAX_REQUEST_BYTES, size
