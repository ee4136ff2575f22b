"""Reading runs beyond one at a time: `GET /api/v1/runs` (filtered, a page at a time) and
`GET /api/v1/runs/{id}/logs` (an attempt's pod log, whole or followed while it runs).

`public_routes` mounts `read_routes` on its router for endpoints that only read. The
paging itself is `run_listing`'s; the pod is `<run>-<attempt>`, and finished pods are
deleted after the operator's pod retention, so a log can be gone while its run is not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from podtask._contract.resources import FINAL_PHASES
from podtask._contract.wire import LABEL_ATTEMPT, LABEL_RUN
from podtask_api.api_models import RunPage, RunStatus
from podtask_api.batch_visibility import visible_runs
from podtask_api.cluster import ListExpired, ObjectNotFound, ObjectRejected
from podtask_api.errors import CLUSTER_ERRORS, ApiError, error_responses
from podtask_api.lookups import read_run
from podtask_api.run_listing import (
    DEFAULT_PAGE_SIZE,
    LABEL_VALUE_PATTERN,
    MAX_PAGE_SIZE,
    Chunk,
    RunFilters,
    decode_cursor,
    invalid_cursor,
    list_page,
)
from podtask_api.run_views import run_summary
from podtask_api.services import Services, services
from podtask_api.triggers import IsoTime

log = logging.getLogger("podtask_api")

read_routes = APIRouter(tags=["runs"])

# The operator's default pod retention (PODTASK_POD_RETENTION_SECONDS), for the 404's words.
_POD_RETENTION = "PODTASK_POD_RETENTION_SECONDS on the operator, 1 hour by default"
_MAX_ATTEMPT = 1000
_TEXT = "text/plain; charset=utf-8"


TaskFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE_PATTERN,
        description="Only runs of this task (its id).",
    ),
]


@read_routes.get(
    "/runs",
    response_model=RunPage,
    responses=error_responses(410, 422, *CLUSTER_ERRORS),
)
async def list_runs(
    svc: Annotated[Services, Depends(services)],
    status: Annotated[
        list[RunStatus] | None,
        Query(description="Only runs in one of these statuses (repeat for several)."),
    ] = None,
    task_identifier: Annotated[TaskFilter, Query(alias="taskIdentifier")] = None,
    task: TaskFilter = None,
    tag: Annotated[
        list[Annotated[str, Query(min_length=1, max_length=128)]] | None,
        Query(description="Only runs with one of these tags (repeat for several)."),
    ] = None,
    queue: Annotated[
        str | None, Query(min_length=1, max_length=253, description="Only runs of this queue.")
    ] = None,
    created_from: Annotated[
        IsoTime | None,
        Query(
            alias="createdFrom",
            description="Only runs created at or after this time (ISO 8601; no zone: UTC).",
        ),
    ] = None,
    created_to: Annotated[
        IsoTime | None,
        Query(
            alias="createdTo",
            description="Only runs created at or before this time (ISO 8601; no zone: UTC).",
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="Runs per page at most.")
    ] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None,
        Query(
            max_length=4096,
            description="The `nextCursor` of the previous page, with the same filters.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Runs, newest first, a page at a time; runs with an idempotency key come after the
    others. Follow `nextCursor` until it is null to see every run exactly once."""
    task_id = task_identifier if task_identifier is not None else task
    filters = RunFilters(
        statuses=frozenset(str(s) for s in status or ()),
        task_id=task_id,
        tags=frozenset(tag or ()),
        queue=queue,
        created_from=created_from,  # IsoTime: in UTC
        created_to=created_to,
    )
    start = decode_cursor(cursor, filters) if cursor is not None else None
    if task is not None and task_id != task:
        return {"data": [], "nextCursor": None}  # `task` and `taskIdentifier` both must hold

    def read_chunk(selector: str | None, size: int, token: str | None) -> Chunk:
        try:
            listed = svc.cluster.list_runs(selector, size, token)
        except ObjectRejected:
            if token is None:
                raise
            raise invalid_cursor("the cluster does not take it") from None
        except ListExpired:
            raise ApiError(
                410,
                "cursor_expired",
                "the cursor is too old for the cluster to go on from; list from the first "
                "page again",
            ) from None
        return Chunk(listed.get("items") or [], (listed.get("metadata") or {}).get("continue"))

    async def fetch(selector: str | None, size: int, token: str | None) -> Chunk:
        chunk = await svc.call(read_chunk, selector, size, token)
        # Runs of a batch not committed yet do not exist for users (`batch_visibility`).
        return Chunk(await visible_runs(svc, chunk.items), chunk.continue_token)

    page = await list_page(fetch, filters, limit, start)
    summaries = []
    for run in page.runs:
        try:
            summaries.append(run_summary(dict(run)))
        except ValueError:
            name = (run.get("metadata") or {}).get("name")
            log.warning("the TaskRun object %r is malformed; it is left out of the list", name)
    next_cursor = page.next_cursor.encode() if page.next_cursor else None
    return {"data": summaries, "nextCursor": next_cursor}


def _log_gone(run: dict[str, Any], run_id: str, attempt: int) -> ApiError:
    phase = (run.get("status") or {}).get("phase")
    recorded = int((run.get("status") or {}).get("attempt") or 0)
    if attempt > recorded and phase not in FINAL_PHASES:
        message = f"attempt {attempt} of run {run_id!r} has not started yet; try again shortly"
    else:
        message = (
            f"the pod of attempt {attempt} of run {run_id!r} no longer exists, nor its log: "
            f"finished pods are deleted after the pod retention ({_POD_RETENTION})"
        )
    return ApiError(404, "log_not_found", message, {"id": run_id, "attempt": attempt})


@read_routes.get(
    "/runs/{run_id}/logs",
    response_class=Response,
    responses={
        200: {
            "description": "The log, as the task printed it (stdout and stderr).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **error_responses(404, 409, 422, *CLUSTER_ERRORS),
    },
)
async def run_logs(
    run_id: str,
    svc: Annotated[Services, Depends(services)],
    attempt: Annotated[
        int | None,
        Query(ge=1, le=_MAX_ATTEMPT, description="The attempt (1, 2, …); the latest if left out."),
    ] = None,
    follow: Annotated[
        bool,
        Query(description="Stream the log while the attempt runs, until its pod ends."),
    ] = False,
) -> Response:
    """The log of one attempt of the run: its pod's output, whole, or followed as it grows.

    A 404 when the run, the attempt or its pod does not exist: finished pods (and their
    logs) are deleted after the operator's pod retention.
    """
    run = await read_run(svc, run_id)
    recorded = int((run.get("status") or {}).get("attempt") or 0)
    number = attempt if attempt is not None else max(recorded, 1)
    # The operator creates attempt N's pod just before it records N: N may be one ahead.
    if number > recorded + 1:
        raise ApiError(
            404,
            "attempt_not_found",
            f"run {run_id!r} has not reached attempt {number} (it is on attempt {recorded})",
            {"id": run_id, "attempt": number},
        )
    pod_name = f"{run_id}-{number}"

    def read_pod() -> dict[str, Any] | None:
        try:
            pod = svc.cluster.get_pod(pod_name)
        except ObjectNotFound:
            return None
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_RUN) != run_id or labels.get(LABEL_ATTEMPT) != str(number):
            return None  # a pod of that name that is not this attempt's
        return pod

    if await svc.call(read_pod) is None:
        raise _log_gone(run, run_id, number)

    def not_ready(exc: ObjectRejected) -> ApiError:
        return ApiError(
            409,
            "log_not_ready",
            f"attempt {number} of run {run_id!r} has no log yet ({exc}); try again shortly",
            {"id": run_id, "attempt": number},
        )

    if follow:

        def open_stream() -> Iterator[bytes]:
            try:
                return svc.cluster.follow_pod_log(pod_name)
            except ObjectNotFound:
                raise _log_gone(run, run_id, number) from None
            except ObjectRejected as exc:
                raise not_ready(exc) from None

        chunks = await svc.call(open_stream)
        return StreamingResponse(iterate_in_threadpool(chunks), media_type=_TEXT)

    def read_log() -> bytes:
        try:
            return svc.cluster.read_pod_log(pod_name)
        except ObjectNotFound:
            raise _log_gone(run, run_id, number) from None
        except ObjectRejected as exc:
            raise not_ready(exc) from None

    return Response(await svc.call(read_log), media_type=_TEXT)
