"""What a caller may do to an existing run: cancel it, replay it, reschedule it.

All pure: each request's shape, the check of the run's state that allows or refuses
it (a 409 naming the state), and the change it makes. The API only ever writes a
run's `spec`; its `status` is the operator's, which acts on what the spec now says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podtask._contract.resources import RunPhase, TaskRunSpec, format_timestamp
from podtask._contract.trigger_request import Delay
from podtask._control.task_runs import delay_until, labels_for, task_run_object
from podtask_api.errors import ApiError, malformed_object


class ReplayRequest(BaseModel):
    """`POST /api/v1/runs/{id}/replay`: a payload for the new run, or none to reuse the old."""

    model_config = ConfigDict(extra="forbid")

    payload: Any = Field(
        default=None,
        description="The new run's payload; leave the field out to replay with the old one.",
    )

    @property
    def has_payload(self) -> bool:
        # `{"payload": null}` asks for a null payload; only a missing field keeps the old one.
        return "payload" in self.model_fields_set


class RescheduleRequest(BaseModel):
    """`POST /api/v1/runs/{id}/reschedule`: when the delayed run should be queued instead."""

    model_config = ConfigDict(extra="forbid")

    delay: Delay = Field(description="Seconds from now, or the time to queue the run.")


def run_spec(run: dict[str, Any]) -> TaskRunSpec:
    """The run's spec; a 502 when the object in the cluster is not a TaskRun we can read."""
    try:
        return TaskRunSpec.model_validate(run.get("spec") or {})
    except ValidationError as exc:
        name = (run.get("metadata") or {}).get("name")
        message = f"the TaskRun object {name!r} in the cluster is malformed"
        raise malformed_object("invalid_run", message, exc) from None


def run_phase(run: dict[str, Any]) -> RunPhase | None:
    """The phase the operator last wrote; None before it first has (or if it is unknown)."""
    phase = (run.get("status") or {}).get("phase")
    try:
        return RunPhase(phase) if phase is not None else None
    except ValueError:
        return None


def _name(run: dict[str, Any]) -> str:
    return str((run.get("metadata") or {}).get("name"))


def cancel_conflict(run: dict[str, Any]) -> ApiError | None:
    """Why `run` cannot be canceled, if it cannot: it has already finished."""
    phase = run_phase(run)
    if phase is not None and phase.is_final:
        return ApiError(
            409,
            "run_finished",
            f"run {_name(run)!r} already finished as {phase}; there is nothing to cancel",
            {"id": _name(run), "status": str(phase)},
        )
    return None


def cancel_patch(run: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The merge patch that asks the operator to cancel `run`; None when already asked.

    A repeated cancel keeps the time of the first, which is when the user asked.
    """
    if (run.get("spec") or {}).get("cancelRequestedAt"):
        return None
    return {"spec": {"cancelRequestedAt": format_timestamp(now)}}


def build_replay(
    run: dict[str, Any],
    name: str,
    *,
    payload: Any = None,
    new_payload: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A new TaskRun with the old run's spec: the same task snapshot and trigger options.

    Left out: what belonged to the old trigger alone (its idempotency key, which would name
    the old run; its cancel request; its delay; its parent, which did not trigger this run).
    """
    spec = run_spec(run)
    replay = spec.model_copy(
        update={
            "idempotency_key": None,
            "cancel_requested_at": None,
            "delay_until": None,
            "parent_run_id": None,
            "replay_of": _name(run),
            "triggered_at": now or datetime.now(UTC),
            "payload": payload if new_payload else spec.payload,
        }
    )
    # A replay of a test run is a test run: it keeps the spec's `isTest`, and its label.
    labels = labels_for(spec.task_id, spec.queue.name, is_test=spec.is_test)
    metadata = {"name": name, "labels": labels}
    return task_run_object(metadata, replay)


def reschedule_conflict(run: dict[str, Any]) -> ApiError | None:
    """Why `run` cannot be rescheduled, if it cannot: only a Delayed run waits for its time."""
    phase = run_phase(run)
    if phase is RunPhase.DELAYED:
        return None
    shown = str(phase) if phase is not None else "Pending (not yet seen by the operator)"
    return ApiError(
        409,
        "run_not_delayed",
        f"run {_name(run)!r} is {shown}, not Delayed; only a delayed run can be rescheduled",
        {"id": _name(run), "status": shown},
    )


def rescheduled_until(request: RescheduleRequest, now: datetime) -> datetime:
    """The new `delayUntil`: a delay of 0 (or a past time) queues the run at once."""
    return delay_until(request.delay, now) or now
