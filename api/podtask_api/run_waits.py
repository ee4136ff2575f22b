"""A runner's waits: what it says when its attempt waits, when it wants to go on, and whether
it may.

The runner says its attempt waits (`POST .../wait`: on runs, or until a time); the API
records it in `status.wait`, and the operator gives the run's slot back. When the wait is
over the runner asks to go on (`POST .../wait/resume`: `wait.resumeRequestedAt`); the
operator queues the run for a slot again and, once admitted, clears the wait. The runner
asks how it stands (`GET .../wait`) until it is `Resumed`. Pure: the changes to write are
JSON patch operations on the TaskRun's status, decided from the run as read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from podtask._contract.bounded_text import head
from podtask._contract.limits import (
    MAX_OBJECT_NAME_LENGTH,
    MAX_WAIT_RUNS_SHOWN,
    MAX_WAITING_FOR_CHARS,
)
from podtask._contract.resources import RunPhase, RunWait, TaskRunStatus, format_timestamp
from podtask._contract.wire import ATTEMPT_NOT_STARTED
from podtask_api.api_models import WaitState
from podtask_api.errors import ApiError

# A wait for a time may not end further ahead than this: a task meant to resume in a year
# should be triggered with a delay instead.
MAX_WAIT_SECONDS = 366 * 24 * 3600
# Run names shown in words; the rest are counted.
_NAMED_IN_WORDS = 3


class WaitRequest(BaseModel):
    """`POST .../wait`: the runs the attempt waits for (the first of them, and how many), or
    the time it waits until."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    runs: list[
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_OBJECT_NAME_LENGTH)]
    ] = Field(default_factory=list, max_length=MAX_WAIT_RUNS_SHOWN)
    run_count: int | None = Field(
        default=None, ge=1, description="How many runs it waits for (default: those listed)."
    )
    until: datetime | None = None

    @model_validator(mode="after")
    def _one_thing_awaited(self) -> WaitRequest:
        if bool(self.runs) == (self.until is not None):
            raise ValueError("a wait is for runs (`runs`) or for a time (`until`): give one")
        if self.run_count is not None and self.run_count < len(self.runs):
            raise ValueError(f"runCount ({self.run_count}) is less than the runs listed")
        if self.until is not None and self.until.tzinfo is None:
            raise ValueError("until must have a time zone (RFC 3339, e.g. ...Z)")
        return self

    @property
    def count(self) -> int:
        return self.run_count or len(self.runs)


def waiting_for(request: WaitRequest, now: datetime) -> str:
    """What the attempt waits for, in words: `run-…`, `20 runs: run-…, …`, or `30s (until …)`."""
    if request.until is not None:
        left = max(0, round((request.until - now).total_seconds()))
        return f"{left}s (until {format_timestamp(request.until)})"
    named = ", ".join(request.runs[:_NAMED_IN_WORDS])
    if request.count <= _NAMED_IN_WORDS and request.count == len(request.runs):
        return named
    return head(f"{request.count} runs: {named}, …", MAX_WAITING_FOR_CHARS)


def _status(run: dict[str, Any]) -> TaskRunStatus:
    return TaskRunStatus.model_validate(run.get("status") or {})


def _current(status: TaskRunStatus, attempt: int) -> RunWait | None:
    wait = status.wait
    return wait if wait is not None and wait.attempt == attempt else None


def wait_write(
    run: dict[str, Any], attempt: int, request: WaitRequest, now: datetime
) -> dict[str, Any] | None:
    """The JSON patch operation that records the wait; None when it is recorded already (the
    runner sent it again, or another wait of its process joined it)."""
    if request.until is not None and request.until - now > timedelta(seconds=MAX_WAIT_SECONDS):
        raise ApiError(
            422,
            "invalid_request",
            f"until is more than {MAX_WAIT_SECONDS // 86400} days ahead; trigger a run with a "
            "delay instead",
        )
    status = _status(run)
    if status.attempt != attempt:
        # Its pod runs a moment before the operator records the attempt: a wait recorded now
        # would be taken for an older attempt's.
        raise ApiError(
            409,
            ATTEMPT_NOT_STARTED,
            f"run {run['metadata']['name']!r} has not recorded attempt {attempt} yet; try again "
            "shortly",
        )
    current = _current(status, attempt)
    if current is not None:
        if current.resume_requested_at is None:
            return None
        raise ApiError(
            409,
            "wait_resuming",
            f"attempt {attempt} of run {run['metadata']['name']!r} is still resuming from its "
            "previous wait; try again shortly",
        )
    wait = RunWait(
        attempt=attempt,
        since=now,
        runs=request.runs,
        run_count=request.count if request.runs else 0,
        until=request.until,
        waiting_for=waiting_for(request, now),
    )
    return {"op": "add", "path": "/status/wait", "value": wait.to_wire()}


def resume_write(run: dict[str, Any], attempt: int, now: datetime) -> dict[str, Any] | None:
    """The JSON patch operation that asks for the run to go on; None when it was asked, or
    the wait is over already."""
    current = _current(_status(run), attempt)
    if current is None or current.resume_requested_at is not None:
        return None
    return {
        "op": "add",
        "path": "/status/wait/resumeRequestedAt",
        "value": format_timestamp(now),
    }


def wait_state(run: dict[str, Any], attempt: int) -> WaitState:
    """How the wait of `attempt` stands (the attempt still runs: `live_attempts` judged it)."""
    status = _status(run)
    current = _current(status, attempt)
    if current is not None:
        return WaitState.WAITING if current.resume_requested_at is None else WaitState.RESUMING
    if status.phase == RunPhase.WAITING:
        return WaitState.RESUMING
    return WaitState.RESUMED
