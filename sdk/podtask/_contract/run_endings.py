"""How a run's status ends: the final status of any end (`finished`), and of the one end both
the API and the operator write, a success (`completed`).

The operator decides every other end (`podtask_operator.lifecycle`); a success it shares with
the API, which completes a run in the same write that records its runner's report of success
(one write instead of two), while the operator completes one whose report it finds before its
pod has ended otherwise. Pure: the clock is an argument.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from podtask._contract.bounded_errors import bounded_error
from podtask._contract.bounded_text import head
from podtask._contract.limits import MAX_CONDITION_MESSAGE_BYTES
from podtask._contract.resources import Condition, RunError, RunPhase, TaskRunStatus

COMPLETED_MESSAGE = "the task completed"


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m"


# Phases in which an attempt runs: its pod exists and its token counts (Waiting: its runner
# waits, its slot given back).
ATTEMPT_PHASES = frozenset({RunPhase.EXECUTING, RunPhase.WAITING})


# Why the current attempt does not go on (its pod cannot start, its node is not ready); gone
# once it does, or once the attempt ends.
STALLED = "Stalled"


def without_condition(status: TaskRunStatus, *types: str) -> list[Condition]:
    return [c for c in status.conditions if c.type not in types]


def finished(
    status: TaskRunStatus,
    phase: RunPhase,
    now: datetime,
    *,
    reason: str,
    message: str,
    error: RunError | None = None,
) -> TaskRunStatus:
    """The final status for an end that is not an attempt's result: cancel, expiry, timeout."""
    attempts = status.attempts
    if status.phase in ATTEMPT_PHASES and attempts and attempts[-1].finished_at is None:
        last = attempts[-1].model_copy(update={"finished_at": now, "reason": reason})
        attempts = [*attempts[:-1], last]
    conditions = without_condition(status, "Waiting", STALLED)
    done = Condition(
        type="Finished",
        status="True",
        reason=reason,
        message=head(message, MAX_CONDITION_MESSAGE_BYTES),
        last_transition_time=now,
    )
    return status.model_copy(
        update={
            "phase": phase,
            "attempts": attempts,
            "error": None if error is None else bounded_error(error),
            "finished_at": now,
            "next_attempt_at": None,
            "wait": None,
            "conditions": [*conditions, done],
            "duration": format_duration((now - status.started_at).total_seconds())
            if status.started_at
            else None,
        }
    )


def completed(
    status: TaskRunStatus, output: Any, now: datetime, *, exit_code: int | None = None
) -> TaskRunStatus:
    """The final status of a run whose current attempt succeeded with `output`.

    The output is kept once, in `output`: the report's copy would count twice in the
    TaskRun's budget (`podtask._contract.limits`). `exit_code` is the attempt's pod's, when it
    had ended by then (a run completed from its report does not wait for its pod).
    """
    attempts = status.attempts
    if attempts:
        last = attempts[-1].model_copy(
            update={
                "finished_at": now,
                "exit_code": exit_code,
                "reason": "Completed",
                "error": None,
            }
        )
        attempts = [*attempts[:-1], last]
    report = status.report
    if report is not None:
        report = report.model_copy(update={"output": None})
    return finished(
        status.model_copy(
            update={"attempts": attempts, "output": output, "report": report, "wait": None}
        ),
        RunPhase.COMPLETED,
        now,
        reason=RunPhase.COMPLETED.value,
        message=COMPLETED_MESSAGE,
    )


def completed_by_report(status: TaskRunStatus) -> bool:
    """Whether `status` is a completion written with its report, before the attempt's pod
    ended: `completed` without the pod's exit code, for the attempt the report is of."""
    last = status.attempts[-1] if status.attempts else None
    return (
        status.phase == RunPhase.COMPLETED.value
        and last is not None
        and last.reason == RunPhase.COMPLETED.value
        and last.exit_code is None
        and status.report is not None
        and status.report.ok
        and status.report.attempt == status.attempt == last.number
    )
