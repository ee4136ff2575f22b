"""Pure decisions about a run's next step: start an attempt, retry, or finish.

Every function here takes the run's spec and status and returns the new
status; nothing here talks to Kubernetes.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from podtask.resources import Attempt, RunPhase, TaskRunSpec, TaskRunStatus
from podtask.retry import next_attempt_machine, next_retry_at
from podtask_operator.attempts import AttemptOutcome, AttemptResult
from podtask_operator.pods import pod_name

_FINAL_PHASE_OF = {
    AttemptOutcome.SUCCEEDED: RunPhase.COMPLETED,
    AttemptOutcome.FAILED: RunPhase.FAILED,
    AttemptOutcome.ABORTED: RunPhase.FAILED,
    AttemptOutcome.OUT_OF_MEMORY: RunPhase.CRASHED,
    AttemptOutcome.TIMED_OUT: RunPhase.TIMED_OUT,
    AttemptOutcome.CRASHED: RunPhase.CRASHED,
    AttemptOutcome.LOST: RunPhase.SYSTEM_FAILURE,
}
_RETRYABLE = frozenset(
    {
        AttemptOutcome.FAILED,
        AttemptOutcome.OUT_OF_MEMORY,
        AttemptOutcome.CRASHED,
        AttemptOutcome.LOST,
    }
)


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m"


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
        }
    )


@dataclass(frozen=True)
class AttemptEnd:
    status: TaskRunStatus
    retry: bool


def end_attempt(
    spec: TaskRunSpec,
    status: TaskRunStatus,
    result: AttemptResult,
    now: datetime,
    random: Callable[[], float] = _random.random,
) -> AttemptEnd:
    """Record the current attempt's result, then retry after the backoff or finish the run."""
    current = status.attempts[-1].model_copy(
        update={
            "finished_at": now,
            "exit_code": result.exit_code,
            "reason": result.reason,
            "error": result.error,
        }
    )
    attempts = [*status.attempts[:-1], current]
    if result.outcome in _RETRYABLE and status.attempt < spec.retry.max_attempts:
        retry_at = next_retry_at(spec.retry, status.attempt, now, random)
        waiting = status.model_copy(
            update={
                "phase": RunPhase.WAITING_TO_RETRY,
                "attempts": attempts,
                "error": result.error,
                "next_attempt_at": retry_at,
            }
        )
        return AttemptEnd(waiting, retry=True)
    started = status.started_at or now
    finished = status.model_copy(
        update={
            "phase": _FINAL_PHASE_OF[result.outcome],
            "attempts": attempts,
            "output": result.output,
            "error": result.error,
            "finished_at": now,
            "next_attempt_at": None,
            "duration": format_duration((now - started).total_seconds()),
        }
    )
    return AttemptEnd(finished, retry=False)
