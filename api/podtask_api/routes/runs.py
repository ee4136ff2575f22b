"""Runs: trigger them (`POST /tasks/{id}/trigger`, `POST /tasks/batch`: they create runs, so
they are here, though under /tasks), and everything under /runs: read one, list them, read
an attempt's log, its Kubernetes Events, cancel, replay, reschedule.

Each route declares who may call it (`access`). The rules are the pure modules': the
request and its plan (`trigger_requests`, `task_runs`, `batch_triggers`), what a run shows
(`run_views`), what may be done to it (`run_actions`), paging (`run_listing`), logs
(`run_logs`); creating runs in the cluster is `run_creation`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Header, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import iterate_in_threadpool

from podtask._contract.batch_markers import request_digest
from podtask._contract.resources import format_timestamp
from podtask_api.api_models import (
    BatchTriggered,
    ReplayedRun,
    RunKubernetesEvents,
    RunPage,
    RunView,
    TriggeredRun,
)
from podtask_api.batch_triggers import (
    BatchTriggerRequest,
    check_batch_payloads,
    plan_batch,
    unknown_tasks_error,
)
from podtask_api.batch_visibility import visible_runs
from podtask_api.cluster import (
    ObjectNotFound,
    ObjectRejected,
    PhaseChanged,
)
from podtask_api.errors import ApiError, error_responses
from podtask_api.kube_events import involved_names, run_events_view
from podtask_api.lookups import find_task, patch_run, read_run, run_not_found, task_not_found
from podtask_api.routes.access import (
    PUBLIC_ROUTE_ERRORS,
    Access,
    CallerDep,
    any_key,
    key_or_run,
    write_key,
    write_key_or_run,
)
from podtask_api.routes.run_filters import CursorQuery, RunQueryDep
from podtask_api.run_actions import (
    ReplayRequest,
    RescheduleRequest,
    build_replay,
    cancel_conflict,
    cancel_patch,
    reschedule_conflict,
    rescheduled_until,
)
from podtask_api.run_creation import create_batch, create_run
from podtask_api.run_listing import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Chunk,
    decode_cursor,
    list_page,
    read_chunk,
)
from podtask_api.run_logs import (
    MAX_ATTEMPT,
    POD_LOG_UNREADABLE,
    attempt_has_ended,
    attempt_pod_name,
    log_attempt,
    log_gone,
    log_not_ready,
)
from podtask_api.run_names import random_run_name
from podtask_api.run_views import run_summary, run_view
from podtask_api.services import Services, ServicesDep
from podtask_api.stored_json import check_payload_size
from podtask_api.stored_logs import attempt_pod, stored_log
from podtask_api.task_runs import PlannedRun, plan_run
from podtask_api.trigger_requests import TriggerRequest

T = TypeVar("T")
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

log = logging.getLogger("podtask_api")

# The endpoints under /runs, and those under /tasks that trigger runs: the docs list these
# with the tasks.
router = APIRouter(prefix="/api/v1", tags=["runs"], responses=PUBLIC_ROUTE_ERRORS)
triggers = APIRouter(prefix="/api/v1", tags=["tasks"], responses=PUBLIC_ROUTE_ERRORS)

_TEXT = "text/plain; charset=utf-8"


def _triggering_runs(
    path: str, answer: type[BaseModel], found: str, access: Access
) -> Callable[[Endpoint], Endpoint]:
    """The route of an endpoint that triggers runs: it answers 201, or 200 when every run
    was `found` (an idempotency key found it) and nothing was created."""
    return triggers.post(
        path,
        status_code=201,
        response_model=answer,
        responses={
            200: {"model": answer, "description": found},
            **error_responses(400, 404, 409, 413),
        },
        dependencies=[Depends(access)],
    )


@_triggering_runs(
    "/tasks/{task_id}/trigger", TriggeredRun, "The idempotency key found its run.", write_key_or_run
)
async def trigger_task(
    task_id: str,
    svc: ServicesDep,
    who: CallerDep,
    response: Response,
    request: Annotated[TriggerRequest | None, Body()] = None,
) -> dict[str, Any]:
    """Trigger one run of the task. With an idempotency key, a run that holds the key is the
    answer instead (`isCached`, 200): one live or Completed, within the key's TTL."""
    trigger = request or TriggerRequest()
    check_payload_size(trigger.payload)
    task = await find_task(svc, task_id)
    if task is None:
        raise task_not_found(task_id, svc.settings.namespace)
    run = await create_run(svc, plan_run(task, trigger, parent_run_id=who.run_id))
    if run.is_cached:
        response.status_code = 200
    return run.to_wire()


BatchIdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=256,
        description="Makes retrying the batch safe: a batch triggered again with the same "
        "key (and the same items) answers with the same runs, and one cut off half-way "
        "is completed.",
    ),
]


@_triggering_runs(
    "/tasks/batch", BatchTriggered, "Every item found an existing run.", write_key_or_run
)
async def batch_trigger(
    request: BatchTriggerRequest,
    svc: ServicesDep,
    who: CallerDep,
    response: Response,
    idempotency_key: BatchIdempotencyKey = None,
) -> dict[str, Any]:
    """Trigger up to 1,000 runs at once, in item order: every one is created, or none is,
    whatever fails when; the runs exist (are listed, readable, started) once all do."""
    check_batch_payloads(request.items)
    task_ids = sorted({item.task for item in request.items})
    found = await asyncio.gather(*(find_task(svc, task_id) for task_id in task_ids))
    tasks = {task_id: task for task_id, task in zip(task_ids, found, strict=True) if task}
    missing = set(task_ids) - set(tasks)
    if missing:
        raise unknown_tasks_error(request.items, missing, svc.settings.namespace)
    plan = plan_batch(request.items, tasks, parent_run_id=who.run_id)
    runs = await create_batch(
        svc,
        plan,
        idempotency_key=idempotency_key,
        parent_run_id=who.run_id,
        digest=request_digest([item.model_dump(mode="json") for item in request.items]),
    )
    if all(run.is_cached for run in runs):
        response.status_code = 200
    return {"runs": [run.to_wire() for run in runs]}


@router.get(
    "/runs/{run_id}",
    response_model=RunView,
    responses=error_responses(404),
    dependencies=[Depends(key_or_run)],
)
async def get_run(run_id: str, svc: ServicesDep, who: CallerDep) -> dict[str, Any]:
    run = await read_run(svc, run_id)
    if not who.may_read(run):
        raise ApiError(
            403,
            "forbidden",
            f"run {run_id!r} was not triggered by run {who.run_id!r}: an attempt token may read "
            "only the runs its run triggered",
            {"id": run_id},
        )
    return run_view(run)


@router.get(
    "/runs",
    response_model=RunPage,
    responses=error_responses(410),
    dependencies=[Depends(any_key)],
)
async def list_runs(
    svc: ServicesDep,
    query: RunQueryDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="Runs per page at most.")
    ] = DEFAULT_PAGE_SIZE,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    """Runs, newest first, a page at a time; runs with an idempotency key come after the
    others. Follow `nextCursor` until it is null to see every run exactly once."""
    filters = query.filters
    start = decode_cursor(cursor, filters) if cursor is not None else None
    if query.matches_none:
        return {"data": [], "nextCursor": None}  # `task` and `taskIdentifier` both must hold

    async def fetch(selector: str | None, size: int, token: str | None) -> Chunk:
        chunk = await svc.call(read_chunk, svc.cluster.list_runs, selector, size, token)
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


def _read_log(read: Callable[[str], T], run: dict[str, Any], run_id: str, attempt: int) -> T:
    """`read` the log of the attempt's pod: the pod gone is a 404, no log yet a 409."""
    try:
        return read(attempt_pod_name(run_id, attempt))
    except ObjectNotFound:
        raise log_gone(run, run_id, attempt) from None
    except ObjectRejected as exc:
        raise log_not_ready(run_id, attempt, exc) from None


@router.get(
    "/runs/{run_id}/logs",
    response_class=Response,
    responses={
        200: {
            "description": "The log, as the task printed it (stdout and stderr).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **error_responses(404, 409),
    },
    dependencies=[Depends(any_key)],
)
async def run_logs(
    run_id: str,
    svc: ServicesDep,
    attempt: Annotated[
        int | None,
        Query(ge=1, le=MAX_ATTEMPT, description="The attempt (1, 2, …); the latest if left out."),
    ] = None,
    follow: Annotated[
        bool,
        Query(description="Stream the log while the attempt runs, until its pod ends."),
    ] = False,
) -> Response:
    """The log of one attempt of the run: its pod's output, whole, or followed as it grows.

    While the attempt's pod exists, its log; once it is gone (canceled, timed out, deleted,
    or past the pod retention), the copy its runner sent as it ran, kept for the run's
    retention: the head and the tail of a long log, a line saying what was left out
    between them. Following a log whose pod is gone gives that copy and ends. A 404 when
    the run or the attempt does not exist, or when no log of it was kept.
    """
    run = await read_run(svc, run_id)
    number = log_attempt(run, run_id, attempt)
    if await svc.call(attempt_pod, svc.cluster, run_id, number) is not None:
        try:
            if follow:
                chunks = await svc.call(_read_log, svc.cluster.follow_pod_log, run, run_id, number)
                return StreamingResponse(iterate_in_threadpool(chunks), media_type=_TEXT)
            text = await svc.call(_read_log, svc.cluster.read_pod_log, run, run_id, number)
            return Response(text, media_type=_TEXT)
        except ApiError as exc:
            # Its pod went meanwhile, or its node does not answer: the stored copy, if any.
            if exc.code not in POD_LOG_UNREADABLE:
                raise
            unreadable: ApiError | None = exc
    else:
        unreadable = None
    ended = attempt_has_ended(run, number)
    stored = await svc.call(partial(stored_log, ended=ended), svc.cluster, run, number)
    if stored is None:
        raise unreadable or log_gone(run, run_id, number)
    return Response(stored, media_type=_TEXT)


@router.get(
    "/runs/{run_id}/kubernetes-events",
    response_model=RunKubernetesEvents,
    responses=error_responses(404),
    dependencies=[Depends(any_key)],
)
async def run_kubernetes_events(run_id: str, svc: ServicesDep) -> dict[str, Any]:
    """The Kubernetes Events of the run and of its attempts' pods, oldest first: why it
    waited (a queue's limit, no node with room, an image being pulled), retried or ended,
    as `kubectl describe` shows them. The cluster keeps Events for an hour by default."""
    return {"data": await kubernetes_events_of(svc, await read_run(svc, run_id))}


async def kubernetes_events_of(svc: Services, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The Events of `run` and its attempts' pods, as the route shows them."""

    def list_all() -> list[list[dict[str, Any]]]:
        return [svc.cluster.list_events(name) for name in involved_names(run)]

    return run_events_view(await svc.call(list_all))


@router.post(
    "/runs/{run_id}/cancel",
    response_model=RunView,
    responses=error_responses(404, 409),
    dependencies=[Depends(write_key)],
)
async def cancel_run(run_id: str, svc: ServicesDep) -> dict[str, Any]:
    """Cancel a run that has not finished; the answer is the run as it is now.

    The run is marked as to be canceled (`cancelRequestedAt`); the operator then deletes its
    pod and ends it `Canceled` (at once when it has not started). Canceling again is
    harmless; a finished run is a 409 `run_finished`.
    """
    run = await read_run(svc, run_id)
    conflict = cancel_conflict(run)
    if conflict is not None:
        raise conflict
    patch = cancel_patch(run, datetime.now(UTC))
    if patch is not None:
        run = await patch_run(svc, run_id, patch)
    return run_view(run)


@router.post(
    "/runs/{run_id}/replay",
    status_code=201,
    response_model=ReplayedRun,
    responses=error_responses(400, 404, 413),
    dependencies=[Depends(write_key)],
)
async def replay_run(
    run_id: str, svc: ServicesDep, request: Annotated[ReplayRequest | None, Body()] = None
) -> dict[str, Any]:
    """Trigger the run's task again as it was triggered: a new run with the old run's spec.

    The new run keeps the old one's task version, options, tags and metadata (as it was
    triggered), and is a test run when the old one was; it has a new id, `replayOf` the old
    one, and the old payload unless the body gives a new `payload`.
    Any run may be replayed, also one still running.
    """
    replay = request or ReplayRequest()
    if replay.has_payload:
        check_payload_size(replay.payload)
    run = await read_run(svc, run_id)
    body = build_replay(
        run, random_run_name(), payload=replay.payload, new_payload=replay.has_payload
    )
    task_id: str = body["spec"]["taskId"]
    planned = PlannedRun(index=0, body=body, task_id=task_id, idempotency_key=None)
    created = await create_run(svc, planned)
    return {**created.to_wire(), "taskId": task_id}


@router.post(
    "/runs/{run_id}/reschedule",
    response_model=RunView,
    responses=error_responses(400, 404, 409, 413),
    dependencies=[Depends(write_key)],
)
async def reschedule_run(
    run_id: str, request: RescheduleRequest, svc: ServicesDep
) -> dict[str, Any]:
    """Move the start of a `Delayed` run: `delay` in seconds from now, or a time.

    Any other state is a 409 `run_not_delayed`. The answer is the run as it is now.
    """
    run = await read_run(svc, run_id)
    conflict = reschedule_conflict(run)
    if conflict is not None:
        raise conflict
    when = format_timestamp(rescheduled_until(request, datetime.now(UTC)))
    try:
        updated = await svc.call(svc.cluster.set_delay_until, run, when)
    except ObjectNotFound:
        raise run_not_found(run_id) from None
    except PhaseChanged as exc:
        # The operator queued (or canceled) the run between our read and our write.
        raise reschedule_conflict(exc.run) or ApiError(
            409, "run_not_delayed", f"run {run_id!r} is no longer delayed"
        ) from None
    return run_view(updated)
