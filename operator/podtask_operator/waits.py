"""A run whose attempt waits: when it gives its queue slot back, and how it takes one again.

The runner says through the API that its attempt waits (`status.wait`, written by the API:
on runs it triggered, or for a time) and, once the wait is over, that it wants to go on
(`wait.resumeRequestedAt`). The operator answers each step (`wait_step`):

- a run `Executing` whose attempt waits is `released`: phase `Waiting`, and its pod, which
  keeps running, no longer counts against its queue's limit nor its concurrency key;
- a run `Waiting` that asks to go on is queued again, ahead of the runs that have not started
  (`queues.LinePlace`), and `resumed` (phase `Executing`, the wait cleared) once admitted;
- a wait that was over before the operator released it is simply cleared (`continued`): the
  run never gave its slot back.

Time spent waiting is not counted in maxDuration (`Attempt.waitedSeconds`), as Trigger.dev
does not count a waiting run's time as compute. Pure: no cluster, no clock of its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from podtask._contract.resources import Attempt, RunPhase, RunWait, TaskRunStatus
from podtask._contract.run_endings import without_condition
from podtask_operator.lifecycle import with_condition

# The condition type every wait of a run is said under (as Delayed, Queued, WaitingToRetry).
WAITING_CONDITION = "Waiting"
WAITING_FOR_RUNS = "WaitingForRuns"
WAITING_FOR_TIME = "WaitingForTime"


class WaitStep(StrEnum):
    NONE = "None"  # its attempt does not wait
    RELEASE = "Release"  # it waits: give its slot back
    CONTINUE = "Continue"  # its wait ended before its slot was given back: clear it
    HOLD = "Hold"  # it waits, its slot given back
    RESUME = "Resume"  # its wait is over: it needs a slot again


def current_wait(status: TaskRunStatus) -> RunWait | None:
    """The wait of the attempt the run is on, if it waits (one of an older attempt is stale)."""
    wait = status.wait
    if wait is None or wait.attempt != status.attempt:
        return None
    return wait


def wait_step(status: TaskRunStatus) -> WaitStep:
    """What a run whose attempt runs (`Executing` or `Waiting`) needs for its wait."""
    wait = current_wait(status)
    phase = None if status.phase is None else RunPhase(status.phase)
    if phase is RunPhase.WAITING:
        if wait is None or wait.resume_requested_at is not None:
            return WaitStep.RESUME
        return WaitStep.HOLD
    if phase is RunPhase.EXECUTING and wait is not None:
        return WaitStep.RELEASE if wait.resume_requested_at is None else WaitStep.CONTINUE
    return WaitStep.NONE


def waiting_words(wait: RunWait) -> str:
    """`Waiting for run-…`, or `Waiting until …`: the condition's message."""
    if wait.waiting_for:
        return f"Waiting for {wait.waiting_for}"
    if wait.until is not None:
        return f"Waiting until {wait.until.isoformat()}"
    return "Waiting"


def released(status: TaskRunStatus, now: datetime) -> TaskRunStatus:
    """The status of a run whose attempt waits, its slot given back."""
    wait = current_wait(status)
    assert wait is not None, "only a run that waits is released"
    reason = WAITING_FOR_RUNS if wait.run_count else WAITING_FOR_TIME
    conditions = with_condition(status, WAITING_CONDITION, reason, waiting_words(wait), now)
    return status.model_copy(update={"phase": RunPhase.WAITING, "conditions": conditions})


def resume_waiting(
    status: TaskRunStatus, reason: str, message: str, now: datetime
) -> TaskRunStatus:
    """The status of a run whose wait is over, while it waits for a slot: `message` says why."""
    said = f"the wait is over; it goes on once admitted: {message}"
    conditions = with_condition(status, WAITING_CONDITION, reason, said, now)
    return status.model_copy(update={"conditions": conditions})


def waited_seconds(status: TaskRunStatus) -> float:
    """The time the current attempt has spent in waits that are over."""
    if not status.attempts:
        return 0.0
    return status.attempts[-1].waited_seconds or 0.0


def _with_waited(attempts: list[Attempt], seconds: float) -> list[Attempt]:
    if not attempts:
        return attempts
    last = attempts[-1]
    total = round((last.waited_seconds or 0.0) + max(0.0, seconds), 3)
    return [*attempts[:-1], last.model_copy(update={"waited_seconds": total})]


def _wait_over(status: TaskRunStatus, now: datetime) -> TaskRunStatus:
    wait = current_wait(status)
    waited = 0.0 if wait is None else (now - wait.since).total_seconds()
    return status.model_copy(
        update={"wait": None, "attempts": _with_waited(status.attempts, waited)}
    )


def continued(status: TaskRunStatus, now: datetime) -> TaskRunStatus:
    """The status of a run whose wait was over before it gave its slot back."""
    return _wait_over(status, now)


def resumed(status: TaskRunStatus, now: datetime) -> TaskRunStatus:
    """The status of a run that holds a slot again after its wait: it goes on `Executing`."""
    over = _wait_over(status, now)
    return over.model_copy(
        update={
            "phase": RunPhase.EXECUTING,
            "conditions": without_condition(over, WAITING_CONDITION),
        }
    )


def waited_deadline(deadline: datetime | None, status: TaskRunStatus) -> datetime | None:
    """maxDuration's deadline of the current attempt, moved by the time it has waited; none
    while it waits (waiting time is not counted)."""
    if deadline is None or status.phase == RunPhase.WAITING or current_wait(status) is not None:
        return None
    return deadline + timedelta(seconds=waited_seconds(status))
