"""Classifying a finished attempt, and what the run does next."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podtask._contract.resources import (
    AttemptReport,
    RunError,
    RunPhase,
    TaskRunSpec,
    TaskRunStatus,
)
from podtask._contract.wire import NON_RETRYABLE_ERRORS
from podtask_devcluster.patches import json_patch
from podtask_operator.attempts import AttemptKind, classify_attempt, reported_success
from podtask_operator.lifecycle import end_attempt, start_attempt
from podtask_operator.run_writes import status_patch

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def pod(
    phase: str, exit_code: int | None = None, reason: str = "", pod_reason: str = ""
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if pod_reason:
        status["reason"] = pod_reason
    if exit_code is not None:
        status["containerStatuses"] = [
            {"name": "task", "state": {"terminated": {"exitCode": exit_code, "reason": reason}}}
        ]
    return {"status": status}


def ok(attempt: int = 1, output: Any = None) -> AttemptReport:
    return AttemptReport(attempt=attempt, ok=True, output=output or {"message": "hi"})


def failed(error_type: str, attempt: int = 1) -> AttemptReport:
    return AttemptReport(attempt=attempt, ok=False, error=RunError(type=error_type, message="boom"))


@pytest.mark.parametrize(
    ("the_pod", "report", "outcome"),
    [
        (pod("Succeeded", 0, "Completed"), ok(), AttemptKind.SUCCEEDED),
        (pod("Failed", 1, "Error"), failed("ValueError"), AttemptKind.FAILED),
        (pod("Failed", 1, "Error"), failed("AbortTaskRunError"), AttemptKind.ABORTED),
        # Failures another attempt cannot mend: the same code, payload and image fail alike.
        (pod("Failed", 1, "Error"), failed("TaskModuleImportError"), AttemptKind.ABORTED),
        (pod("Failed", 1, "Error"), failed("TaskNotFoundError"), AttemptKind.ABORTED),
        (pod("Failed", 1, "Error"), failed("PayloadValidationError"), AttemptKind.ABORTED),
        (pod("Failed", 1, "Error"), failed("OutputNotSerializableError"), AttemptKind.ABORTED),
        (pod("Failed", 1, "Error"), failed("OutputTooLargeError"), AttemptKind.ABORTED),
        (pod("Failed", 137, "OOMKilled"), None, AttemptKind.OUT_OF_MEMORY),
        (pod("Failed", 137, "Error"), None, AttemptKind.LOST),
        (pod("Failed", 137, "Error"), failed("ValueError"), AttemptKind.FAILED),
        (pod("Failed", 137, "ContainerStatusUnknown", "NodeLost"), None, AttemptKind.LOST),
        (pod("Failed", None, "", "Evicted"), None, AttemptKind.LOST),
        (pod("Failed", 2, "Error"), None, AttemptKind.LOST),
        (pod("Failed", 139, "Error"), None, AttemptKind.CRASHED),
        (pod("Failed", 143, "Error"), None, AttemptKind.LOST),
        (pod("Failed", 143, "Error"), failed("TaskTerminatedError"), AttemptKind.LOST),
        (pod("Failed", 143, "Error"), failed("ValueError"), AttemptKind.FAILED),
        (pod("Failed", 1, "Error"), failed("MaxDurationExceededError"), AttemptKind.TIMED_OUT),
        (pod("Succeeded", 0, "Completed"), ok(attempt=2), AttemptKind.CRASHED),
        (None, None, AttemptKind.LOST),
        # A reported success stands however the pod ended afterwards: deleted, lost, killed.
        (None, ok(), AttemptKind.SUCCEEDED),
        (pod("Failed", 137, "ContainerStatusUnknown", "NodeLost"), ok(), AttemptKind.SUCCEEDED),
        (pod("Failed", 137, "Error"), ok(), AttemptKind.SUCCEEDED),
    ],
)
def test_classify_attempt(
    the_pod: dict[str, Any] | None, report: AttemptReport | None, outcome: AttemptKind
) -> None:
    result = classify_attempt(the_pod, report, attempt=1)
    assert result is not None
    assert result.kind is outcome


def test_running_pod_is_not_finished() -> None:
    assert classify_attempt(pod("Running"), ok(), attempt=1) is None
    assert classify_attempt(pod("Pending"), None, attempt=1) is None


def test_success_carries_the_output() -> None:
    result = classify_attempt(pod("Succeeded", 0, "Completed"), ok(), attempt=1)
    assert result is not None and result.output == {"message": "hi"}


def _executing(spec: TaskRunSpec) -> TaskRunStatus:
    return start_attempt("run-abc123", spec, TaskRunStatus(), NOW)


def test_start_attempt_numbers_pods_and_keeps_history(spec: TaskRunSpec) -> None:
    status = _executing(spec)
    assert status.phase == RunPhase.EXECUTING
    assert (status.attempt, status.machine, status.started_at) == (1, "medium-1x", NOW)
    assert status.attempts[0].pod == "run-abc123-1"


def test_failure_with_attempts_left_waits_for_the_backoff(spec: TaskRunSpec) -> None:
    status = _executing(spec)
    result = classify_attempt(pod("Failed", 1, "Error"), failed("ValueError"), attempt=1)
    assert result is not None
    end = end_attempt(spec, status, result, NOW, random=lambda: 0.0)
    assert end.retry
    assert end.status.phase == RunPhase.WAITING_TO_RETRY
    assert end.status.next_attempt_at == NOW + timedelta(milliseconds=1000)
    assert end.status.attempts[0].exit_code == 1
    assert end.status.attempts[0].error is not None


@pytest.mark.parametrize("error_type", sorted(NON_RETRYABLE_ERRORS))
def test_a_failure_no_attempt_can_mend_fails_at_once_with_the_error(
    spec: TaskRunSpec, error_type: str
) -> None:
    status = _executing(spec)
    assert spec.retry.max_attempts > 1
    result = classify_attempt(pod("Failed", 1, "Error"), failed(error_type), attempt=1)
    assert result is not None
    end = end_attempt(spec, status, result, NOW + timedelta(seconds=2))
    assert not end.retry
    assert end.status.phase == RunPhase.FAILED
    assert end.status.error is not None and end.status.error.type == error_type
    assert end.status.duration == "2.0s"


def test_running_past_max_duration_times_out_without_retrying(spec: TaskRunSpec) -> None:
    status = _executing(spec)
    result = classify_attempt(pod("Failed", 1, "Error"), failed("MaxDurationExceededError"), 1)
    assert result is not None
    end = end_attempt(spec, status, result, NOW)
    assert end.status.phase == RunPhase.TIMED_OUT and not end.retry


def test_last_attempt_failure_is_final(spec: TaskRunSpec) -> None:
    status = _executing(
        spec.model_copy(update={"retry": spec.retry.model_copy(update={"max_attempts": 1})})
    )
    result = classify_attempt(pod("Failed", 1, "Error"), failed("ValueError"), attempt=1)
    assert result is not None
    one_try = spec.model_copy(update={"retry": spec.retry.model_copy(update={"max_attempts": 1})})
    end = end_attempt(one_try, status, result, NOW)
    assert end.status.phase == RunPhase.FAILED and not end.retry


def test_oom_retries_on_the_policy_machine(spec: TaskRunSpec) -> None:
    status = _executing(spec)
    result = classify_attempt(pod("Failed", 137, "OOMKilled"), None, attempt=1)
    assert result is not None
    end = end_attempt(spec, status, result, NOW, random=lambda: 0.0)
    second = start_attempt("run-abc123", spec, end.status, NOW + timedelta(seconds=1))
    assert second.attempt == 2
    assert second.machine == "large-1x"
    assert [a.machine for a in second.attempts] == ["medium-1x", "large-1x"]


def test_sigkill_without_oomkilled_is_a_killed_attempt_retried_on_the_same_machine(
    spec: TaskRunSpec,
) -> None:
    # What the kubelet shows for a process someone else SIGKILLed: reason Error, 128 + 9.
    result = classify_attempt(pod("Failed", 137, "Error"), None, attempt=1)
    assert result is not None
    assert (result.kind, result.reason, result.exit_code) == (AttemptKind.LOST, "Killed", 137)
    assert result.error is not None and result.error.type == "TaskKilledError"
    assert "signal 9" in result.error.message and "137" in result.error.message
    end = end_attempt(spec, _executing(spec), result, NOW, random=lambda: 0.0)
    assert end.retry and end.status.attempts[0].reason == "Killed"
    # The spec has retry.outOfMemory.machine: a kill is not an OOM, so it is not used.
    second = start_attempt("run-abc123", spec, end.status, NOW + timedelta(seconds=1))
    assert [a.machine for a in second.attempts] == ["medium-1x", "medium-1x"]


def test_a_killed_last_attempt_is_a_system_failure(spec: TaskRunSpec) -> None:
    one_try = spec.model_copy(update={"retry": spec.retry.model_copy(update={"max_attempts": 1})})
    result = classify_attempt(pod("Failed", 137, "Error"), None, attempt=1)
    assert result is not None
    end = end_attempt(one_try, _executing(one_try), result, NOW)
    assert end.status.phase == RunPhase.SYSTEM_FAILURE and not end.retry


def test_only_the_oomkilled_reason_is_out_of_memory() -> None:
    for exit_code in (137, 1):
        result = classify_attempt(pod("Failed", exit_code, "OOMKilled"), None, attempt=1)
        assert result is not None and result.kind is AttemptKind.OUT_OF_MEMORY


def test_a_reported_success_stands_whatever_the_pod_does() -> None:
    for the_pod in (pod("Running"), pod("Failed", 143, "Error"), None):
        result = reported_success(the_pod, ok(), attempt=1)
        assert result is not None and result.kind is AttemptKind.SUCCEEDED
        assert result.output == {"message": "hi"}
    assert reported_success(pod("Running"), ok(attempt=2), attempt=1) is None
    assert reported_success(pod("Running"), failed("ValueError"), attempt=1) is None
    assert reported_success(pod("Running"), None, attempt=1) is None


def _written(read: dict[str, Any] | None, old: TaskRunStatus, new: TaskRunStatus) -> Any:
    """The status `read` (parsed as `old`) once the operator's patch to `new` is applied."""
    run = {"metadata": {"name": "run-abc123"}, **({} if read is None else {"status": read})}
    return json_patch(run, status_patch(read, old, new)).get("status")


def test_status_patch_sends_changes_and_clears_removed_keys(spec: TaskRunSpec) -> None:
    waiting = TaskRunStatus(
        phase=RunPhase.WAITING_TO_RETRY, attempt=1, next_attempt_at=NOW, report=ok()
    )
    read = waiting.to_wire()
    started = start_attempt("run-abc123", spec, waiting, NOW)
    patch = status_patch(read, waiting, started)
    assert {"op": "add", "path": "/status/phase", "value": "Executing"} in patch
    assert {"op": "remove", "path": "/status/nextAttemptAt"} in patch
    assert not any(op["path"].startswith("/status/report") for op in patch)
    assert _written(read, waiting, started) == {**started.to_wire(), "report": read["report"]}
    assert status_patch(started.to_wire(), started, started) == []


def test_the_first_status_patch_makes_the_status(spec: TaskRunSpec) -> None:
    started = start_attempt("run-abc123", spec, TaskRunStatus(), NOW)
    assert TaskRunStatus.model_validate(_written(None, TaskRunStatus(), started)) == started


def test_a_cleared_key_the_status_does_not_hold_is_not_removed(spec: TaskRunSpec) -> None:
    # The status read lacks what its parse defaults (attempts, conditions): nothing to remove.
    held = TaskRunStatus(phase=RunPhase.WAITING_TO_RETRY, attempt=1, next_attempt_at=NOW)
    read = {"phase": "WaitingToRetry", "attempt": 1}
    started = start_attempt("run-abc123", spec, held, NOW)
    assert TaskRunStatus.model_validate(_written(read, held, started)) == started


def test_a_completed_runs_output_keeps_its_nulls_and_leaves_the_report(spec: TaskRunSpec) -> None:
    """The output moves from the report to `status.output` whole: a null in it is a value (a
    merge patch would read it as "remove this key")."""
    output = {"a": None, "b": [None, {"c": None}], "d": {"e": None}}
    started = start_attempt("run-abc123", spec, TaskRunStatus(), NOW)
    executing = started.model_copy(update={"report": ok(output=output)})
    read = executing.to_wire()
    result = classify_attempt(pod("Succeeded", 0), ok(output=output), 1)
    assert result is not None
    written = _written(read, executing, end_attempt(spec, executing, result, NOW).status)
    assert written["output"] == output
    assert "output" not in written["report"] and written["report"]["ok"] is True


def test_the_operator_never_writes_the_runs_metadata(spec: TaskRunSpec) -> None:
    """The API writes `status.metadata` for the runner; whatever the operator read or decided
    (a status that parsed without it, one written meanwhile), its patches leave it alone."""
    started = start_attempt("run-abc123", spec, TaskRunStatus(), NOW)
    executing = started.model_copy(update={"metadata": {"progress": 0.5}})
    ended = end_attempt(spec, executing, classify_attempt(pod("Succeeded", 0), ok(), 1), NOW)
    assert ended.status.metadata == {"progress": 0.5}
    read = executing.to_wire()
    for new in (ended.status, ended.status.model_copy(update={"metadata": None})):
        patch = status_patch(read, executing, new)
        assert {"op": "add", "path": "/status/phase", "value": "Completed"} in patch
        assert not any(op["path"].startswith("/status/metadata") for op in patch)
    assert not any(
        op["path"].startswith("/status/metadata")
        for op in status_patch(started.to_wire(), started, executing)
    )


def test_pending_runs_wait_for_their_delay_then_their_ttl_counts() -> None:
    from podtask_operator.lifecycle import PendingAction, pending_action

    base = TaskRunSpec.model_validate(
        {
            "taskId": "t",
            "version": "1",
            "image": "i",
            "module": "m",
            "machine": "micro",
            "queue": {"name": "q"},
        }
    )
    assert pending_action(base, NOW, NOW).action is PendingAction.ENQUEUE
    delayed = base.model_copy(
        update={"delay_until": NOW + timedelta(seconds=30), "ttl_seconds": 10}
    )
    pending = pending_action(delayed, NOW, NOW)
    assert (pending.action, pending.until) == (PendingAction.DELAY, NOW + timedelta(seconds=30))
    after_delay = pending_action(delayed, NOW, NOW + timedelta(seconds=35))
    assert (after_delay.action, after_delay.until) == (
        PendingAction.ENQUEUE,
        NOW + timedelta(seconds=40),
    )
    assert pending_action(delayed, NOW, NOW + timedelta(seconds=41)).action is PendingAction.EXPIRE


def test_max_duration_deadline_and_operator_ends(spec: TaskRunSpec) -> None:
    from podtask._contract.run_endings import finished
    from podtask_operator.lifecycle import MAX_DURATION_GRACE, attempt_deadline

    bounded = spec.model_copy(update={"max_duration_seconds": 60})
    status = _executing(bounded)
    assert attempt_deadline(bounded, NOW) == NOW + timedelta(seconds=60) + MAX_DURATION_GRACE
    assert attempt_deadline(spec, NOW) is None
    # A pod that has not started has no maxDuration running yet.
    assert attempt_deadline(bounded, None) is None
    canceled = finished(
        status,
        RunPhase.CANCELED,
        NOW + timedelta(seconds=5),
        reason="Canceled",
        message="the run was canceled",
    )
    assert canceled.phase == RunPhase.CANCELED
    assert canceled.attempts[-1].finished_at == NOW + timedelta(seconds=5)
    assert canceled.attempts[-1].reason == "Canceled"
    assert canceled.duration == "5.0s"
    assert [c.type for c in canceled.conditions] == ["Finished"]
    never_started = finished(TaskRunStatus(), RunPhase.EXPIRED, NOW, reason="Expired", message="x")
    assert never_started.duration is None and never_started.attempts == []


def test_waiting_conditions_say_why_and_are_cleared_on_start(spec: TaskRunSpec) -> None:
    from podtask_operator.lifecycle import waiting

    queued = waiting(TaskRunStatus(), RunPhase.QUEUED, "QueueAtLimit", "at its limit 3/3", NOW)
    assert queued.phase == RunPhase.QUEUED
    assert [(c.type, c.reason) for c in queued.conditions] == [("Waiting", "QueueAtLimit")]
    started = start_attempt("run-abc123", spec, queued, NOW)
    assert started.conditions == []
