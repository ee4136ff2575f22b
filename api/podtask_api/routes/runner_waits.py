"""The runner's waits: its attempt waits (`POST .../wait`), wants to go on (`POST
.../wait/resume`), and asks how it stands (`GET .../wait`) until it may (`run_waits`).

Like every runner route, each takes the attempt token signed for its path's run and attempt,
only while that attempt runs (`live_attempts`: `Executing` or `Waiting`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends

from podtask._contract.wire import RUNNER_ATTEMPT_PATH
from podtask_api.api_models import RunnerWait
from podtask_api.cluster import AttemptNotCurrent, ObjectNotFound
from podtask_api.errors import CLUSTER_ERRORS, ApiError, error_responses
from podtask_api.live_attempts import run_gone
from podtask_api.routes.access import attempt_token, executing_run
from podtask_api.routes.runner import REPORT_WRITE_TRIES
from podtask_api.run_waits import WaitRequest, resume_write, wait_state, wait_write
from podtask_api.services import ServicesDep

router = APIRouter(
    prefix=RUNNER_ATTEMPT_PATH + "/wait",
    dependencies=[Depends(attempt_token)],
    tags=["runner"],
    # As the runner's other routes; 409 also: a previous wait still resuming, or the attempt
    # not recorded yet (try again).
    responses=error_responses(401, 403, 409, 422, *CLUSTER_ERRORS),
)

Decide = Callable[[dict[str, Any]], dict[str, Any] | None]


async def _written(svc: ServicesDep, run_id: str, attempt: int, decide: Decide) -> dict[str, Any]:
    """Write what `decide` says of the run as read (if anything), guarded by its version;
    how the wait stands then."""
    run = await executing_run(svc, run_id, attempt)
    for _ in range(REPORT_WRITE_TRIES):
        write = decide(run)
        if write is None:
            return {"state": wait_state(run, attempt)}
        try:
            written = await svc.call(svc.cluster.write_wait, run, write)
        except ObjectNotFound:
            raise run_gone(run_id, attempt) from None
        except AttemptNotCurrent:
            # The operator wrote in between: judge again from the run as it is now.
            run = await executing_run(svc, run_id, attempt)
        else:
            return {"state": wait_state(written, attempt)}
    raise ApiError(
        503,
        "run_busy",
        f"run {run_id!r} changed under each of {REPORT_WRITE_TRIES} tries to record its wait; "
        "try again",
    )


@router.post("", response_model=RunnerWait, responses=error_responses(400, 413))
async def begin_wait(
    run_id: str, attempt: int, request: WaitRequest, svc: ServicesDep
) -> dict[str, Any]:
    """The attempt waits: its run gives its queue slot back while it does."""
    now = datetime.now(UTC)
    return await _written(svc, run_id, attempt, lambda run: wait_write(run, attempt, request, now))


@router.post("/resume", response_model=RunnerWait)
async def end_wait(run_id: str, attempt: int, svc: ServicesDep) -> dict[str, Any]:
    """The attempt's wait is over: its run takes a slot again, then goes on (`Resumed`)."""
    now = datetime.now(UTC)
    return await _written(svc, run_id, attempt, lambda run: resume_write(run, attempt, now))


@router.get("", response_model=RunnerWait)
async def get_wait(run_id: str, attempt: int, svc: ServicesDep) -> dict[str, Any]:
    """How the attempt's wait stands: `Waiting`, `Resuming`, or `Resumed` (go on)."""
    return {"state": wait_state(await executing_run(svc, run_id, attempt), attempt)}
