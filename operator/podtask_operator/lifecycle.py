"""Pure decisions about a run's next step: start an attempt, retry, or finish.

Every function here takes the run's spec and status and returns the new
status; nothing here talks to Kubernetes.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from podtask._contract.bounded_errors import bounded_error
from podtask._contract.bounded_text import head
from podtask._contract.limits import MAX_CONDITION_MESSAGE_BYTES, attempt_error_bytes
from podtask._contract.resources import (
    Attempt,
    Condition,
    RunError,
    RunPhase,
    TaskRunSpec,
    TaskRunStatus,
)
from podtask._contract.retry import next_attempt_machine, next_retry_at
from podtask._contract.run_endings import (
    STALLED,
    completed,
    finished,
    without_condition,
)
from podtask._contract.wire import TIMED_OUT_ERROR
from podtask_operator.attempts import AttemptKind, ClassifiedAttempt
from podtask_operator.pods import pod_name

_FINAL_PHASE_OF = {
    AttemptKind.SUCCEEDED: RunPhase.COMPLETED,
    AttemptKind.FAILED: RunPhase.FAILED,
    AttemptKind.ABORTED: RunPhase.FAILED,
    AttemptKind.OUT_OF_MEMORY: RunPhase.CRASHED,
    AttemptKind.TIMED_OUT: RunPhase.TIMED_OUT,
    AttemptKind.CRASHED: RunPhase.CRASHED,
    AttemptKind.LOST: RunPhase.SYSTEM_FAILURE,
    AttemptKind.NOT_STARTED: RunPhase.SYSTEM_FAILURE,
}
_RETRYABLE = frozenset(
    {
        AttemptKind.FAILED,
        AttemptKind.OUT_OF_MEMORY,
        AttemptKind.CRASHED,
        AttemptKind.LOST,
        AttemptKind.NOT_STARTED,
    }
)


def start_attempt(
    run_name: str, spec: TaskRunSpec, status: TaskRunStatus, now: datetime
) -> TaskRunStatus:
    """The status once the next attempt's pod exists."""
    number = status.attempt + 1
    machine = next_attempt_machine(spec, status)
    attempt = Attempt(
        number=number, pod=pod_name(run_name, number), machine=machine, started_at=now
    )
    return status.model_copy(
        update={
            "phase": RunPhase.EXECUTING,
            "attempt": number,
            "machine": machine,
            "attempts": [*status.attempts, attempt],
            "started_at": status.started_at or now,
            "next_attempt_at": None,
            "wait": None,
            "conditions": without_condition(status, "Waiting", STALLED),
        }
    )


@dataclass(frozen=True)
class AttemptEnd:
    status: TaskRunStatus
    retry: bool


def end_attempt(
    spec: TaskRunSpec,
    status: TaskRunStatus,
    result: ClassifiedAttempt,
    now: datetime,
    random: Callable[[], float] = _random.random,
) -> AttemptEnd:
    """Record the current attempt's result, then retry after the backoff or finish the run."""
    # Each attempt's error gets its share of the TaskRun's budget; the latest is also kept
    # whole (within MAX_ERROR_BYTES) as the run's error.
    share = attempt_error_bytes(spec.retry.max_attempts)
    current = status.attempts[-1].model_copy(
        update={
            "finished_at": now,
            "exit_code": result.exit_code,
            "reason": result.reason,
            "error": None if result.error is None else bounded_error(result.error, share),
        }
    )
    attempts = [*status.attempts[:-1], current]
    if result.kind in _RETRYABLE and status.attempt < spec.retry.max_attempts:
        retry_at = next_retry_at(spec.retry, status.attempt, now, random)
        why = f"attempt {status.attempt} ended {result.reason}"
        if result.error is not None:
            why += f" ({result.error.type}: {result.error.message})"
        message = f"{why}; attempt {status.attempt + 1} at {retry_at.isoformat()}"
        retrying = status.model_copy(
            update={
                "phase": RunPhase.WAITING_TO_RETRY,
                "attempts": attempts,
                "error": None if result.error is None else bounded_error(result.error),
                "next_attempt_at": retry_at,
                "wait": None,
                "conditions": with_condition(
                    status.model_copy(update={"conditions": without_condition(status, STALLED)}),
                    "Waiting",
                    "WaitingToRetry",
                    message,
                    now,
                ),
            }
        )
        return AttemptEnd(retrying, retry=True)
    if result.kind is AttemptKind.SUCCEEDED:
        # The same status the API writes when it records the report (`run_endings`).
        return AttemptEnd(
            completed(status, result.output, now, exit_code=result.exit_code), retry=False
        )
    phase = _FINAL_PHASE_OF[result.kind]
    assert result.error is not None  # every end but a success says what went wrong
    message = f"attempt {status.attempt} ended {result.reason}: {result.error.message}"
    done = finished(
        status.model_copy(update={"attempts": attempts, "wait": None}),
        phase,
        now,
        reason=phase.value,
        message=message,
        error=result.error,
    )
    return AttemptEnd(done, retry=False)


# --- Before the first attempt: delay, ttl ------------------------------------------------

# How long past maxDuration the operator waits for the runner's own enforcement
# (which reports a clean TimedOut) before it deletes the pod itself.
MAX_DURATION_GRACE = timedelta(seconds=10)


class PendingAction(StrEnum):
    DELAY = "Delay"
    EXPIRE = "Expire"
    ENQUEUE = "Enqueue"


@dataclass(frozen=True)
class Pending:
    action: PendingAction
    # DELAY: when the delay ends. ENQUEUE: when the ttl runs out, if it has one.
    until: datetime | None = None


def ttl_deadline(spec: TaskRunSpec, created: datetime) -> datetime | None:
    """When a run that has not started expires: the ttl counts from the end of any delay."""
    if spec.ttl_seconds is None:
        return None
    start = max(created, spec.delay_until) if spec.delay_until else created
    return start + timedelta(seconds=spec.ttl_seconds)


def pending_action(spec: TaskRunSpec, created: datetime, now: datetime) -> Pending:
    """What to do with a run that has not started its first attempt yet."""
    if spec.delay_until is not None and spec.delay_until > now:
        return Pending(PendingAction.DELAY, spec.delay_until)
    deadline = ttl_deadline(spec, created)
    if deadline is not None and deadline <= now:
        return Pending(PendingAction.EXPIRE)
    return Pending(PendingAction.ENQUEUE, deadline)


def attempt_deadline(spec: TaskRunSpec, execution_started: datetime | None) -> datetime | None:
    """When the operator stops the current attempt for running past maxDuration, counted from
    when its task's container started (`pending_pods.execution_started_at`): time spent being
    scheduled or pulled is not the task's."""
    if spec.max_duration_seconds is None or execution_started is None:
        return None
    return execution_started + timedelta(seconds=spec.max_duration_seconds) + MAX_DURATION_GRACE


# --- Conditions --------------------------------------------------------------------------


def with_condition(
    status: TaskRunStatus, type_: str, reason: str, message: str, now: datetime
) -> list[Condition]:
    """The conditions with `type_` set (its transition time kept when nothing changed)."""
    message = head(message, MAX_CONDITION_MESSAGE_BYTES)
    others = [c for c in status.conditions if c.type != type_]
    old = next((c for c in status.conditions if c.type == type_), None)
    if old is not None and (old.reason, old.message) == (reason, message):
        return status.conditions
    return [
        *others,
        Condition(
            type=type_, status="True", reason=reason, message=message, last_transition_time=now
        ),
    ]


def waiting(
    status: TaskRunStatus, phase: RunPhase, reason: str, message: str, now: datetime
) -> TaskRunStatus:
    """The status of a run that waits (Delayed or Queued), with the reason why."""
    return status.model_copy(
        update={
            "phase": phase,
            "conditions": with_condition(status, "Waiting", reason, message, now),
        }
    )


@dataclass(frozen=True)
class RunEnd:
    """An end of a run that is not an attempt's result, as its final status says it."""

    phase: RunPhase
    reason: str
    message: str
    error: RunError | None = None


CANCELED = RunEnd(RunPhase.CANCELED, "Canceled", "the run was canceled")


def timed_out(spec: TaskRunSpec) -> RunEnd:
    """The end of a run whose attempt ran past its maxDuration and did not report success."""
    message = f"the attempt ran past its maxDuration of {spec.max_duration_seconds}s"
    error = RunError(type=TIMED_OUT_ERROR, message=message)
    return RunEnd(RunPhase.TIMED_OUT, "TimedOut", message, error)


def expired(spec: TaskRunSpec) -> RunEnd:
    """The end of a run that did not start within its ttl."""
    message = f"the run did not start within its ttl of {spec.ttl_seconds}s"
    return RunEnd(RunPhase.EXPIRED, "Expired", message)
