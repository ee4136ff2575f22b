"""Which pod holds the log of a run's attempt, and the answers when there is none to read.

The pod of attempt N is `<run>-<N>`; the operator creates it just before it records N,
and deletes it on a cancel or a timeout, or after its pod retention once finished. Then
the copy the runner sent (`stored_logs`) is the log, for the run's retention. Pure.
"""

from __future__ import annotations

from typing import Any

from podtask._contract.resources import FINAL_PHASES, parse_timestamp
from podtask._contract.wire import LABEL_ATTEMPT, LABEL_RUN
from podtask_api.errors import ApiError

MAX_ATTEMPT = 1000
# The answers (error codes) of a pod log read after which the stored copy is read instead:
# the pod went meanwhile, or its node does not answer.
POD_LOG_UNREADABLE = frozenset({"log_not_found", "cluster_unavailable"})


def _recorded_attempt(run: dict[str, Any]) -> int:
    return int((run.get("status") or {}).get("attempt") or 0)


def log_attempt(run: dict[str, Any], run_id: str, asked: int | None) -> int:
    """The attempt whose log to read: `asked`, else the latest; a 404 for one not reached."""
    recorded = _recorded_attempt(run)
    number = asked if asked is not None else max(recorded, 1)
    # The operator creates attempt N's pod just before it records N: N may be one ahead.
    if number > recorded + 1:
        raise ApiError(
            404,
            "attempt_not_found",
            f"run {run_id!r} has not reached attempt {number} (it is on attempt {recorded})",
            {"id": run_id, "attempt": number},
        )
    return number


def attempt_pod_name(run_id: str, attempt: int) -> str:
    return f"{run_id}-{attempt}"


def is_attempt_pod(pod: dict[str, Any], run_id: str, attempt: int) -> bool:
    """Whether `pod` is that attempt's, not another pod of the same name."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_RUN) == run_id and labels.get(LABEL_ATTEMPT) == str(attempt)


def attempt_has_ended(run: dict[str, Any], attempt: int) -> bool:
    """Whether the run's status says the attempt is over: the run finished or went past it,
    or the attempt has its end recorded."""
    status = run.get("status") or {}
    if status.get("phase") in FINAL_PHASES or _recorded_attempt(run) > attempt:
        return True
    for record in status.get("attempts") or []:
        if isinstance(record, dict) and record.get("number") == attempt:
            return parse_timestamp(record.get("finishedAt")) is not None
    return False


def log_gone(run: dict[str, Any], run_id: str, attempt: int) -> ApiError:
    """The 404 for an attempt without a log: not started yet, or its pod gone and no copy
    of its log kept (its runner never reached the API)."""
    phase = (run.get("status") or {}).get("phase")
    if attempt > _recorded_attempt(run) and phase not in FINAL_PHASES:
        message = f"attempt {attempt} of run {run_id!r} has not started yet; try again shortly"
    else:
        message = (
            f"no log of attempt {attempt} of run {run_id!r} was kept: its pod no longer "
            "exists, and its runner sent none of its output to the API (it did not start, "
            "or could not reach the API)"
        )
    return ApiError(404, "log_not_found", message, {"id": run_id, "attempt": attempt})


def log_not_ready(run_id: str, attempt: int, why: object) -> ApiError:
    """The 409 for a pod whose container has not started: no log yet."""
    return ApiError(
        409,
        "log_not_ready",
        f"attempt {attempt} of run {run_id!r} has no log yet ({why}); try again shortly",
        {"id": run_id, "attempt": attempt},
    )
