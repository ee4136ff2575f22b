"""The public endpoints: trigger tasks, one or a batch; read, cancel, replay, reschedule a run.
The routers also carry the endpoints of `run_read_routes` (list runs, logs),
`catalog_routes` (tasks, queues) and `deployment_routes` (deployments).

Three routers, by who may call them. `router` takes write API keys only (a run's
attempt token or a read-only key gets a 403): every endpoint that changes something
goes there unless a task needs it from inside its run. `read_router` takes any API
key, read-only ones too: endpoints that only read. `child_run_router` also takes a
run's attempt token, while its attempt executes, for what a task does with its child
runs: trigger them (they get the token's run as `parentRunId`) and read them (only
them); a read-only key may use its GET endpoints only.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from podtask._contract.batch_markers import request_digest
from podtask._contract.resources import TaskSpec, format_timestamp
from podtask_api import catalog_routes, deployment_routes, run_read_routes
from podtask_api.api_models import BatchTriggered, ReplayedRun, RunView, TriggeredRun
from podtask_api.auth import (
    ApiKeyStore,
    Caller,
    authenticate_caller,
    require_api_key_holder,
    require_write_access,
)
from podtask_api.cluster import ObjectNotFound, PhaseChanged
from podtask_api.errors import CLUSTER_ERRORS, ApiError, error_responses
from podtask_api.live_attempts import attempt_ended, attempt_refusal
from podtask_api.lookups import read_run, run_not_found
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
from podtask_api.run_views import run_view
from podtask_api.services import Services, services
from podtask_api.triggers import (
    BatchTriggerRequest,
    PlannedRun,
    TriggerRequest,
    check_batch_payloads,
    check_payload_size,
    is_object_name,
    plan_batch,
    plan_run,
    random_run_name,
    unknown_tasks_error,
)


async def authenticated_caller(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    """The caller of every public endpoint (FastAPI resolves it once per request).

    A run's attempt token counts only while its attempt executes: the run is read for it,
    so that an ended attempt's token is a 401 on every endpoint, not only those it may use.
    """
    keys: ApiKeyStore = request.app.state.api_keys
    # In a thread: the key store may read its Secret.
    known = await run_in_threadpool(keys.known)
    who = authenticate_caller(
        authorization, known, svc.settings.runner_token_secret.get_secret_value().encode()
    )
    if who.run_id is not None and who.attempt is not None:
        try:
            run = await svc.call(svc.cluster.get_run, who.run_id)
        except ObjectNotFound:
            raise attempt_ended(who.run_id, who.attempt, "the run no longer exists") from None
        refusal = attempt_refusal(run, who.attempt)
        if refusal is not None:
            raise refusal
    return who


def api_key_holder(who: Annotated[Caller, Depends(authenticated_caller)]) -> None:
    """The dependency of endpoints that only read: any API key."""
    require_api_key_holder(who, "use this endpoint")


def writing_api_key_holder(who: Annotated[Caller, Depends(authenticated_caller)]) -> None:
    """The dependency of endpoints that change something: a write API key."""
    require_api_key_holder(who, "use this endpoint")
    require_write_access(who)


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def child_run_caller(
    request: Request, who: Annotated[Caller, Depends(authenticated_caller)]
) -> None:
    """The dependency of endpoints a run uses too: a read-only key may only read with them."""
    if request.method not in _READ_METHODS:
        require_write_access(who)


# Endpoints that change something (`router`) and endpoints that only read (`read_router`):
# a read-only API key may call the second kind only.
router = APIRouter(prefix="/api/v1", dependencies=[Depends(writing_api_key_holder)])
read_router = APIRouter(prefix="/api/v1", dependencies=[Depends(api_key_holder)])
child_run_router = APIRouter(prefix="/api/v1", dependencies=[Depends(child_run_caller)])
# Endpoints of their own modules, behind the same checks.
read_router.include_router(run_read_routes.read_routes)
read_router.include_router(catalog_routes.read_routes)
router.include_router(catalog_routes.write_routes)
read_router.include_router(deployment_routes.read_routes)
router.include_router(deployment_routes.write_routes)


def task_not_found(task_id: str, namespace: str) -> ApiError:
    return ApiError(
        404,
        "task_not_found",
        f"task {task_id!r} is not deployed in namespace {namespace!r}: deploy the module "
        f"that declares it with `podtask deploy` (or run `podtask dev`) and trigger it again",
        {"taskId": task_id},
    )


async def _find_task(svc: Services, task_id: str) -> TaskSpec | None:
    """The deployed task `task_id`, or None when there is none."""
    if not is_object_name(task_id):
        return None
    try:
        task = await svc.call(svc.cluster.get_task, task_id)
    except ObjectNotFound:
        return None
    try:
        return TaskSpec.model_validate(task.get("spec") or {})
    except ValidationError as exc:
        raise ApiError(
            502,
            "invalid_task",
            f"the Task object {task_id!r} in the cluster is malformed; deploy it again",
            [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()],
        ) from None


@child_run_router.post(
    "/tasks/batch",
    tags=["tasks"],
    status_code=201,
    response_model=BatchTriggered,
    responses={
        200: {"model": BatchTriggered, "description": "Every item found an existing run."},
        **error_responses(400, 404, 409, 413, 422, *CLUSTER_ERRORS),
    },
)
async def batch_trigger(
    request: BatchTriggerRequest,
    svc: Annotated[Services, Depends(services)],
    who: Annotated[Caller, Depends(authenticated_caller)],
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=256,
            description="Makes retrying the batch safe: a batch triggered again with the same "
            "key (and the same items) answers with the same runs, and one cut off half-way "
            "is completed.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Trigger up to 1,000 runs at once, in item order: every one is created, or none is,
    whatever fails when; the runs exist (are listed, readable, started) once all do."""
    check_batch_payloads(request.items)
    task_ids = sorted({item.task for item in request.items})
    found = await asyncio.gather(*(_find_task(svc, task_id) for task_id in task_ids))
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


@child_run_router.post(
    "/tasks/{task_id}/trigger",
    tags=["tasks"],
    status_code=201,
    response_model=TriggeredRun,
    responses={
        200: {"model": TriggeredRun, "description": "The idempotency key found its run."},
        **error_responses(400, 404, 409, 413, 422, *CLUSTER_ERRORS),
    },
)
async def trigger_task(
    task_id: str,
    svc: Annotated[Services, Depends(services)],
    who: Annotated[Caller, Depends(authenticated_caller)],
    response: Response,
    request: Annotated[TriggerRequest | None, Body()] = None,
) -> dict[str, Any]:
    """Trigger one run of the task. With an idempotency key, a run that holds the key is the
    answer instead (`isCached`, 200): one live or Completed, within the key's TTL."""
    trigger = request or TriggerRequest()
    check_payload_size(trigger.payload)
    task = await _find_task(svc, task_id)
    if task is None:
        raise task_not_found(task_id, svc.settings.namespace)
    run = await create_run(svc, plan_run(task, trigger, parent_run_id=who.run_id))
    if run.is_cached:
        response.status_code = 200
    return run.to_wire()


@child_run_router.get(
    "/runs/{run_id}",
    tags=["runs"],
    response_model=RunView,
    responses=error_responses(404, *CLUSTER_ERRORS),
)
async def get_run(
    run_id: str,
    svc: Annotated[Services, Depends(services)],
    who: Annotated[Caller, Depends(authenticated_caller)],
) -> dict[str, Any]:
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


@router.post(
    "/runs/{run_id}/cancel",
    tags=["runs"],
    response_model=RunView,
    responses=error_responses(404, 409, *CLUSTER_ERRORS),
)
async def cancel_run(run_id: str, svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
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
        try:
            run = await svc.call(svc.cluster.merge_patch_run, run_id, patch)
        except ObjectNotFound:
            raise run_not_found(run_id) from None
    return run_view(run)


@router.post(
    "/runs/{run_id}/replay",
    tags=["runs"],
    status_code=201,
    response_model=ReplayedRun,
    responses=error_responses(400, 404, 413, 422, *CLUSTER_ERRORS),
)
async def replay_run(
    run_id: str,
    svc: Annotated[Services, Depends(services)],
    request: Annotated[ReplayRequest | None, Body()] = None,
) -> dict[str, Any]:
    """Trigger the run's task again as it was triggered: a new run with the old run's spec.

    The new run keeps the old one's task version, options, tags and metadata; it has a new
    id, `replayOf` the old one, and the old payload unless the body gives a new `payload`.
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
    tags=["runs"],
    response_model=RunView,
    responses=error_responses(400, 404, 409, 413, 422, *CLUSTER_ERRORS),
)
async def reschedule_run(
    run_id: str, request: RescheduleRequest, svc: Annotated[Services, Depends(services)]
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
