"""Which pod holds the log of a run's attempt, and the answers when there is none to read.

The pod of attempt N is `<run>-<N>`; the operator creates it just before it records N,
and deletes finished pods after its pod retention, so a log can be gone while its run is
not. Pure.
"""

from __future__ import annotations

from typing import Any

from podtask._contract.resources import FINAL_PHASES
from podtask._contract.wire import LABEL_ATTEMPT, LABEL_RUN
from podtask_api.errors import ApiError

# The operator's default pod retention (PODTASK_POD_RETENTION_SECONDS), for the 404's words.
_POD_RETENTION = "PODTASK_POD_RETENTION_SECONDS on the operator, 1 hour by default"
MAX_ATTEMPT = 1000


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


def log_gone(run: dict[str, Any], run_id: str, attempt: int) -> ApiError:
    """The 404 for an attempt without a pod: not started yet, or its pod deleted since."""
    phase = (run.get("status") or {}).get("phase")
    if attempt > _recorded_attempt(run) and phase not in FINAL_PHASES:
        message = f"attempt {attempt} of run {run_id!r} has not started yet; try again shortly"
    else:
        message = (
            f"the pod of attempt {attempt} of run {run_id!r} no longer exists, nor its log: "
            f"finished pods are deleted after the pod retention ({_POD_RETENTION})"
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
