"""The runner's callbacks: fetch an attempt, report its outcome, store its output and its
run's metadata.

Every route of the router takes the attempt token signed for its path's run and attempt
(`access.attempt_token`, declared on the router), and only while that attempt executes
(`live_attempts`, judged on the run each reads anyway); the output also while the
attempt's pod is stopping (`live_attempts.log_refusal`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from podtask._contract.attempt_logs import LogChunk
from podtask._contract.limits import MAX_RUN_METADATA_BYTES
from podtask._contract.wire import ATTEMPT_ENDED, RUNNER_ATTEMPT_PATH, RUNNER_METADATA_PATH
from podtask_api.api_models import RunnerAttempt
from podtask_api.cluster import AttemptNotCurrent, ObjectNotFound
from podtask_api.errors import CLUSTER_ERRORS, ApiError, error_responses
from podtask_api.live_attempts import attempt_refusal, is_report_resent, log_refusal, run_gone
from podtask_api.reports import CompletionReport, attempt_report
from podtask_api.routes.access import attempt_run, attempt_token, executing_run
from podtask_api.run_views import attempt_view
from podtask_api.services import Services, ServicesDep
from podtask_api.stored_json import check_run_metadata_size
from podtask_api.stored_logs import append_chunk, attempt_pod

# Each retry follows an operator write that landed between our read and our write; one
# attempt sees a couple at most, so the bound only keeps a misbehaving writer from looping us.
REPORT_WRITE_TRIES = 5


class MetadataUpdate(BaseModel):
    """`PUT /api/v1/runner/runs/{run}/attempts/{attempt}/metadata`: the whole document
    (`podtask._contract.run_metadata`)."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any] = Field(
        description="The run's metadata, whole: it replaces what was stored (a JSON object, "
        f"at most {MAX_RUN_METADATA_BYTES // 1024} KiB)."
    )


router = APIRouter(
    prefix=RUNNER_ATTEMPT_PATH,
    dependencies=[Depends(attempt_token)],
    tags=["runner"],
    # 401: no valid token, or its attempt has ended; 403: the token of another attempt;
    # 409: the attempt has not started; 422: the attempt in the path is not a number;
    # 503 also: callbacks are disabled.
    responses=error_responses(401, 403, 409, 422, *CLUSTER_ERRORS),
)


@router.get("", response_model=RunnerAttempt)
async def fetch_attempt(run_id: str, attempt: int, svc: ServicesDep) -> dict[str, Any]:
    return attempt_view(await executing_run(svc, run_id, attempt), attempt)


async def _write_while_executing(
    svc: Services,
    run_id: str,
    attempt: int,
    what: str,
    write: Callable[[dict[str, Any]], None],
    *,
    written: Callable[[dict[str, Any]], bool] = lambda run: False,
) -> Response:
    """`write` onto the run while `attempt` executes (`write` itself checks that it still
    does as it writes); a 204 once written, or once the run shows it `written` already."""
    run = await attempt_run(svc, run_id, attempt)
    for _ in range(REPORT_WRITE_TRIES):
        if written(run):
            return Response(status_code=204)
        refusal = attempt_refusal(run, attempt)
        if refusal is not None:
            raise refusal
        try:
            await svc.call(write, run)
        except ObjectNotFound:
            raise run_gone(run_id, attempt) from None
        except AttemptNotCurrent as moved:
            # The run changed between our read and our write: judge the write again.
            run = moved.run
        else:
            return Response(status_code=204)
    raise ApiError(
        503,
        "run_busy",
        f"run {run_id!r} changed under each of {REPORT_WRITE_TRIES} tries to record the "
        f"{what}; try again",
    )


@router.post("/complete", status_code=204, responses=error_responses(400, 413))
async def complete_attempt(
    run_id: str, attempt: int, report: CompletionReport, svc: ServicesDep
) -> Response:
    stored = attempt_report(report, attempt)
    return await _write_while_executing(
        svc,
        run_id,
        attempt,
        "report",
        lambda run: svc.cluster.record_report(run, stored),
        # The runner lost our answer to this same report and asks again: it has it.
        written=lambda run: is_report_resent(run, stored),
    )


@router.put(RUNNER_METADATA_PATH, status_code=204, responses=error_responses(400, 413))
async def put_metadata(
    run_id: str, attempt: int, update: MetadataUpdate, svc: ServicesDep
) -> Response:
    """Store the run's metadata, whole, as the attempt's task has it now (`status.metadata`,
    which the run's view shows from then on). A JSON object of at most 256 KiB (413)."""
    check_run_metadata_size(update.metadata)
    return await _write_while_executing(
        svc,
        run_id,
        attempt,
        "metadata",
        lambda run: svc.cluster.record_metadata(run, update.metadata),
    )


@router.post("/log", status_code=204, responses=error_responses(400, 413))
async def append_log(run_id: str, attempt: int, chunk: LogChunk, svc: ServicesDep) -> Response:
    """Keep a chunk of what the attempt's container wrote, for the run's retention."""
    run = await attempt_run(svc, run_id, attempt)
    refusal = attempt_refusal(run, attempt)
    if refusal is not None and refusal.code == ATTEMPT_ENDED:
        refusal = log_refusal(refusal, await svc.call(attempt_pod, svc.cluster, run_id, attempt))
    if refusal is not None:
        raise refusal
    await svc.call(append_chunk, svc.cluster, run, attempt, chunk)
    return Response(status_code=204)
