"""The runner's callbacks: fetch an attempt, report its outcome. Each needs the attempt token,
signed for that attempt, while the attempt executes (`live_attempts`, judged on the run each
reads anyway)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response

from podtask._contract.wire import RUNNER_ATTEMPT_PATH
from podtask_api.api_models import RunnerAttempt
from podtask_api.auth import require_attempt_token
from podtask_api.cluster import AttemptNotCurrent, ObjectNotFound
from podtask_api.errors import CLUSTER_ERRORS, ApiError, error_responses
from podtask_api.live_attempts import attempt_ended, attempt_refusal, is_report_resent
from podtask_api.reports import CompletionReport, attempt_report
from podtask_api.run_views import attempt_view
from podtask_api.services import Services, services


def _authorized(
    run_id: str,
    attempt: int,
    svc: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    secret = svc.settings.runner_token_secret.get_secret_value().encode()
    require_attempt_token(authorization, secret, run_id, attempt)


# Each retry follows an operator write that landed between our read and our write; one
# attempt sees a couple at most, so the bound only keeps a misbehaving writer from looping us.
REPORT_WRITE_TRIES = 5

router = APIRouter(
    prefix=RUNNER_ATTEMPT_PATH,
    dependencies=[Depends(_authorized)],
    tags=["runner"],
    # 401: no valid token, or its attempt has ended; 403: the token of another attempt;
    # 409: the attempt has not started; 422: the attempt in the path is not a number;
    # 503 also: callbacks are disabled.
    responses=error_responses(401, 403, 409, 422, *CLUSTER_ERRORS),
)


def _run_gone(run_id: str, attempt: int) -> ApiError:
    return attempt_ended(run_id, attempt, "the run no longer exists")


async def _read_run(svc: Services, run_id: str, attempt: int) -> dict[str, Any]:
    try:
        return await svc.call(svc.cluster.get_run, run_id)
    except ObjectNotFound:
        raise _run_gone(run_id, attempt) from None


async def _current_run(svc: Services, run_id: str, attempt: int) -> dict[str, Any]:
    run = await _read_run(svc, run_id, attempt)
    refusal = attempt_refusal(run, attempt)
    if refusal is not None:
        raise refusal
    return run


@router.get("", response_model=RunnerAttempt)
async def fetch_attempt(
    run_id: str, attempt: int, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    return attempt_view(await _current_run(svc, run_id, attempt), attempt)


@router.post("/complete", status_code=204, responses=error_responses(400, 413))
async def complete_attempt(
    run_id: str,
    attempt: int,
    report: CompletionReport,
    svc: Annotated[Services, Depends(services)],
) -> Response:
    run = await _read_run(svc, run_id, attempt)
    stored = attempt_report(report, attempt)
    for _ in range(REPORT_WRITE_TRIES):
        if is_report_resent(run, stored):
            # The runner lost our answer to this same report and asks again: it has it.
            return Response(status_code=204)
        refusal = attempt_refusal(run, attempt)
        if refusal is not None:
            raise refusal
        try:
            await svc.call(svc.cluster.record_report, run, stored)
        except ObjectNotFound:
            raise _run_gone(run_id, attempt) from None
        except AttemptNotCurrent as moved:
            # The run changed between our read and our write: judge the report again.
            run = moved.run
        else:
            return Response(status_code=204)
    raise ApiError(
        503,
        "run_busy",
        f"run {run_id!r} changed under each of {REPORT_WRITE_TRIES} tries to record the "
        "report; try again",
    )
