"""When an attempt token counts: only while its attempt executes.

A token's signature and expiry say who signed it and for which run and attempt; whether
that attempt still executes (`Executing`, or `Waiting` on its runs) is in the run's status,
which every endpoint that accepts a token reads fresh and judges here (`attempt_refusal`).
An attempt has ended once its run has finished, moved past it (retried or waiting to), or
accepted its report; its token is then refused with a 401 (`attempt_ended`, saying how in
`details.why`), whatever it asks for. Two exceptions: the runner sending the very report that
was accepted again (`is_report_resent`): it lost the first answer; and the runner sending its
output while its pod still runs (`log_refusal`): a canceled or timed-out attempt's runner
still writes its last lines while it stops, and they belong to the attempt's log.

Pure functions of the TaskRun object (and the pod) as the cluster returns them.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from podtask._contract.resources import AttemptReport, RunPhase, TaskRunStatus
from podtask._contract.wire import ATTEMPT_ENDED, ATTEMPT_NOT_STARTED
from podtask_api.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
# The phases in which an attempt runs: `Waiting` too (its runner waits, its pod runs on).
_ATTEMPT_RUNS = frozenset({RunPhase.EXECUTING, RunPhase.WAITING})


def attempt_ended(run_id: str, attempt: int, why: str) -> ApiError:
    """The 401 for a token whose attempt is over: it will never count again."""
    return ApiError(
        401,
        ATTEMPT_ENDED,
        f"attempt {attempt} of run {run_id!r} has ended ({why}): its token is no longer "
        "valid, for an attempt token is valid only while its attempt executes",
        {"id": run_id, "attempt": attempt, "why": why},
        headers=_CHALLENGE,
    )


def run_gone(run_id: str, attempt: int) -> ApiError:
    """The 401 for a token whose run has been deleted."""
    return attempt_ended(run_id, attempt, "the run no longer exists")


def _status(run: dict[str, Any]) -> TaskRunStatus:
    return TaskRunStatus.model_validate(run.get("status") or {})


def attempt_refusal(run: dict[str, Any], attempt: int) -> ApiError | None:
    """Why the token of `attempt` may not be used now, if it may not.

    The operator creates attempt N's pod before it records `status.attempt = N`, and only it
    signs tokens, one per pod it creates: a valid token for N proves N has started, so a run
    still on N-1 (and not finished) counts as executing N.
    """
    name = str((run.get("metadata") or {}).get("name"))
    try:
        status = _status(run)
    except ValidationError:
        return attempt_ended(name, attempt, "the run's status cannot be read")
    phase = None if status.phase is None else RunPhase(status.phase)
    if phase is not None and phase.is_final:
        return attempt_ended(name, attempt, f"the run finished as {phase}")
    if status.attempt > attempt:
        return attempt_ended(name, attempt, f"the run is on attempt {status.attempt}")
    if status.attempt == attempt and phase not in _ATTEMPT_RUNS:
        return attempt_ended(name, attempt, f"the run is {phase or 'Pending'}")
    if status.attempt < attempt - 1:
        return ApiError(
            409,
            ATTEMPT_NOT_STARTED,
            f"run {name!r} has not started attempt {attempt} yet (it is on attempt "
            f"{status.attempt}); try again shortly",
        )
    if status.report is not None and status.report.attempt == attempt:
        return attempt_ended(name, attempt, "it has reported its result")
    return None


def is_report_resent(run: dict[str, Any], report: dict[str, Any]) -> bool:
    """Whether `report` (as it would be stored) is the one the run accepted already."""
    try:
        status = _status(run)
        resent = AttemptReport.model_validate(report)
    except ValidationError:
        return False
    accepted = status.report
    if accepted is None:
        return False
    # Once the run completes, the operator holds the output once, in `status.output`.
    output = status.output if accepted.ok and accepted.output is None else accepted.output
    return (accepted.attempt, accepted.ok, output, accepted.error) == (
        resent.attempt,
        resent.ok,
        resent.output,
        resent.error,
    )


def log_refusal(refusal: ApiError | None, pod: dict[str, Any] | None) -> ApiError | None:
    """Why the runner may not add to its attempt's log, given `attempt_refusal`'s answer and
    the attempt's pod (None when it is gone): an ended attempt's runner may while its pod
    still runs (it is stopping), and until its pod has finished."""
    if refusal is None or refusal.code != ATTEMPT_ENDED or pod is None:
        return refusal
    phase = (pod.get("status") or {}).get("phase")
    return refusal if phase in ("Succeeded", "Failed") else None
