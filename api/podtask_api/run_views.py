"""What the API shows of a `TaskRun`: the public run view, the summary lists show, and the
runner's attempt view.

Pure functions of the TaskRun object as the cluster returns it (a dict). Their shapes
are documented by the models in `api_models`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from podtask._contract.machines import DEFAULT_MACHINE, PRESETS, MachinePreset
from podtask._contract.resources import (
    PENDING_STATUS,
    Attempt,
    TaskRunSpec,
    TaskRunStatus,
    format_timestamp,
)
from podtask._contract.retry import next_attempt_machine
from podtask_api.idempotency import key_expires_at


def _spec(run: dict[str, Any]) -> TaskRunSpec:
    return TaskRunSpec.model_validate(run.get("spec") or {})


def _status(run: dict[str, Any]) -> TaskRunStatus:
    return TaskRunStatus.model_validate(run.get("status") or {})


def _wire_time(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _duration_ms(status: TaskRunStatus) -> int | None:
    if status.started_at is None or status.finished_at is None:
        return None
    return max(0, round((status.finished_at - status.started_at).total_seconds() * 1000))


def _conditions(run: dict[str, Any]) -> list[Any]:
    # As the operator wrote them: they say why a run waits or ended, in its own words.
    conditions = (run.get("status") or {}).get("conditions")
    return conditions if isinstance(conditions, list) else []


def _error_summary(status: TaskRunStatus) -> dict[str, Any] | None:
    if status.error is None:
        return None
    return {"type": status.error.type, "message": status.error.message}


def _shown_everywhere(
    run: dict[str, Any], spec: TaskRunSpec, status: TaskRunStatus
) -> dict[str, Any]:
    """What both the summary and the full view show of a run."""
    metadata = run.get("metadata") or {}
    return {
        "id": metadata.get("name"),
        "taskId": spec.task_id,
        "version": spec.version,
        "status": str(status.phase) if status.phase is not None else PENDING_STATUS,
        "attempt": status.attempt,
        "queue": spec.queue.name,
        "machine": status.machine or spec.machine,
        "tags": spec.tags,
        "concurrencyKey": spec.concurrency_key,
        "idempotencyKey": spec.idempotency_key,
        "priority": spec.priority,
        "parentRunId": spec.parent_run_id,
        "replayOf": spec.replay_of,
        "isTest": spec.is_test,
        "createdAt": metadata.get("creationTimestamp"),
        "startedAt": _wire_time(status.started_at),
        "finishedAt": _wire_time(status.finished_at),
        "durationMs": _duration_ms(status),
    }


def current_metadata(spec: TaskRunSpec, status: TaskRunStatus) -> dict[str, Any]:
    """The run's metadata now: as its task last wrote it, else as it was triggered."""
    return status.metadata if status.metadata is not None else spec.metadata


def run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """The run as `GET /api/v1/runs` lists it: what a table shows, nothing large."""
    status = _status(run)
    return {**_shown_everywhere(run, _spec(run), status), "error": _error_summary(status)}


def run_view(run: dict[str, Any]) -> dict[str, Any]:
    """The run as `GET /api/v1/runs/{id}` shows it: the summary's fields and all the rest."""
    spec = _spec(run)
    status = _status(run)
    key_expiry = key_expires_at(run) if spec.idempotency_key is not None else None
    return {
        **_shown_everywhere(run, spec, status),
        "attempts": [a.to_wire() for a in status.attempts],
        "payload": spec.payload,
        "output": status.output,
        "error": status.error.to_wire() if status.error is not None else None,
        "metadata": current_metadata(spec, status),
        "idempotencyKeyExpiresAt": _wire_time(key_expiry),
        "cancelRequestedAt": _wire_time(spec.cancel_requested_at),
        "conditions": _conditions(run),
        "nextAttemptAt": _wire_time(status.next_attempt_at),
        "wait": status.wait.to_wire() if status.wait is not None else None,
        "duration": status.duration,
    }


def _attempt_entry(status: TaskRunStatus, attempt: int) -> Attempt | None:
    for entry in status.attempts:
        if entry.number == attempt:
            return entry
    return None


def attempt_machine(spec: TaskRunSpec, status: TaskRunStatus, attempt: int) -> str:
    """The machine preset `attempt` runs on, also before the operator has recorded it."""
    entry = _attempt_entry(status, attempt)
    if entry is not None:
        return entry.machine
    if status.attempt < attempt:
        # Started but not recorded yet: the operator chose it by this same rule.
        return next_attempt_machine(spec, status)
    return status.machine or spec.machine


def _preset(*names: str) -> MachinePreset:
    # Presets are checked at trigger time; a Task deployed with an unknown one still runs.
    for name in names:
        if name in PRESETS:
            return PRESETS[name]
    return PRESETS[DEFAULT_MACHINE]


def attempt_view(
    run: dict[str, Any], attempt: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """What the runner of `attempt` needs: module, payload, and everything `Context` holds."""
    spec = _spec(run)
    status = _status(run)
    run_id = (run.get("metadata") or {}).get("name")
    entry = _attempt_entry(status, attempt)
    machine = _preset(attempt_machine(spec, status, attempt), spec.machine)
    started_at = (entry.started_at if entry else None) or now or datetime.now(UTC)
    return {
        "runId": run_id,
        "attempt": attempt,
        "taskId": spec.task_id,
        "module": spec.module,
        "payload": spec.payload,
        "maxDurationSeconds": spec.max_duration_seconds,
        "context": {
            "runId": run_id,
            "attempt": attempt,
            "taskId": spec.task_id,
            "queue": spec.queue.name,
            "machine": {"name": machine.name, "cpu": machine.cpu, "memoryGb": machine.memory_gb},
            "startedAt": _wire_time(started_at),
            "tags": spec.tags,
            # An attempt after the first goes on from the metadata the one before left.
            "metadata": current_metadata(spec, status),
            "concurrencyKey": spec.concurrency_key,
            "idempotencyKey": spec.idempotency_key,
            "parentRunId": spec.parent_run_id,
            "isTest": spec.is_test,
        },
    }
