"""What a run needs next, decided from its spec and status alone: `next_action`.

The one place that says whether a run may start, waits (its delay, its retry's backoff),
expires, is canceled or is done. Both the reconcile of a run and the start of a run the
scheduler admitted ask it, so the two never disagree. Pure: no cluster, no clock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from podtask._contract.resources import RunPhase, TaskRunSpec, TaskRunStatus
from podtask._contract.run_endings import ATTEMPT_PHASES
from podtask_operator.attempts import ClassifiedAttempt, reported_success
from podtask_operator.lifecycle import PendingAction, pending_action


class Next(StrEnum):
    DONE = "Done"  # the run has ended: nothing more to do
    WATCH_ATTEMPT = "WatchAttempt"  # an attempt runs (or waits): judge it from its pod
    CANCEL = "Cancel"  # a cancel was asked for and no attempt runs
    END_REPORTED = "EndReported"  # the last attempt reported success after all
    WAIT_FOR_RETRY = "WaitForRetry"  # the retry's backoff is not over
    DELAY = "Delay"  # the trigger's delay is not over
    EXPIRE = "Expire"  # its ttl passed before it started
    START = "Start"  # it may start its next attempt once admitted


@dataclass(frozen=True)
class RunAction:
    next: Next
    # WAIT_FOR_RETRY, DELAY: when the wait ends. START: when the ttl runs out, if it has one.
    until: datetime | None = None
    # END_REPORTED: the attempt's result, as reported.
    result: ClassifiedAttempt | None = None

    @property
    def startable(self) -> bool:
        return self.next is Next.START


def phase_of(status: TaskRunStatus) -> RunPhase | None:
    return RunPhase(status.phase) if status.phase else None


def next_action(
    spec: TaskRunSpec, status: TaskRunStatus, created: datetime, now: datetime
) -> RunAction:
    """What `run` needs next at `now`; `created` is when its TaskRun was created."""
    phase = phase_of(status)
    if phase is not None and phase.is_final:
        return RunAction(Next.DONE)
    if phase in ATTEMPT_PHASES:
        return RunAction(Next.WATCH_ATTEMPT)
    if spec.cancel_requested_at is not None:
        return RunAction(Next.CANCEL)
    success = reported_success(None, status.report, status.attempt)
    if success is not None:
        # Its pod was lost just as it reported: the run is done, never executed again.
        return RunAction(Next.END_REPORTED, result=success)
    retry_at = status.next_attempt_at
    if phase is RunPhase.WAITING_TO_RETRY and retry_at is not None and retry_at > now:
        return RunAction(Next.WAIT_FOR_RETRY, retry_at)
    if status.attempt > 0:
        return RunAction(Next.START)
    pending = pending_action(spec, created, now)
    if pending.action is PendingAction.DELAY:
        return RunAction(Next.DELAY, pending.until)
    if pending.action is PendingAction.EXPIRE:
        return RunAction(Next.EXPIRE)
    return RunAction(Next.START, pending.until)
