"""The public endpoints: trigger tasks, one or a batch; read, cancel, replay, reschedule a run.

Two routers, by who may call them. `router` takes API keys only (a run's attempt
token gets a 403): every endpoint goes there unless a task needs it from inside
its run. `child_run_router` also takes a run's attempt token, for what a task
does with its child runs: trigger them (they get the token's run as
`parentRunId`) and read them (only them).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from podtask.resources import TaskSpec
from podtask_api.auth import Caller, authenticate_caller, require_api_key_holder
from podtask_api.cluster import ObjectNotFound, PhaseChanged
from podtask_api.errors import ApiError
from podtask_api.run_actions import (
    ReplayRequest,
    RescheduleRequest,
    build_replay,
    cancel_conflict,
    cancel_patch,
    reschedule_conflict,
    rescheduled_until,
    wire_time,
)
from podtask_api.run_creation import create_batch, create_run
from podtask_api.run_views import run_view
from podtask_api.services import Services, services
from podtask_api.triggers import (
    BatchTriggerRequest,
    PlannedRun,
    TriggerRequest,
    build_task_run,
    check_batch_payloads,
    check_payload_size,
    is_object_name,
    plan_batch,
    random_run_name,
    run_name_for,
    unknown_tasks_error,
)


def authenticated_caller(
    svc: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    settings = svc.settings
    return authenticate_caller(
        authorization,
        settings.api_key_digests,
        settings.api_keys_required,
        settings.runner_token_secret.get_secret_value().encode(),
    )


def _api_key_holder(who: Annotated[Caller, Depends(authenticated_caller)]) -> None:
    require_api_key_holder(who, "use this endpoint")


# Endpoints that change something (`router`) and endpoints that only read (`read_router`):
# a read-only API key may call the second kind only.
router = APIRouter(prefix="/api/v1", dependencies=[Depends(_api_key_holder)])
read_router = APIRouter(prefix="/api/v1", dependencies=[Depends(_api_key_holder)])
child_run_router = APIRouter(prefix="/api/v1", dependencies=[Depends(authenticated_caller)])


def task_not_found(task_id: str, namespace: str) -> ApiError:
    return ApiError(
        404,
        "task_not_found",
        f"task {task_id!r} is not deployed in namespace {namespace!r}: deploy the module "
        f"that declares it with `podtask deploy` (or run `podtask dev`) and trigger it again",
        {"taskId": task_id},
    )


def run_not_found(run_id: str) -> ApiError:
    return ApiError(404, "run_not_found", f"there is no run {run_id!r}", {"id": run_id})


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


@child_run_router.post("/tasks/batch")
async def batch_trigger(
    request: BatchTriggerRequest,
    svc: Annotated[Services, Depends(services)],
    who: Annotated[Caller, Depends(authenticated_caller)],
) -> JSONResponse:
    """Trigger up to 1,000 runs at once, in item order: every one is created, or none is."""
    check_batch_payloads(request.items)
    task_ids = sorted({item.task for item in request.items})
    found = await asyncio.gather(*(_find_task(svc, task_id) for task_id in task_ids))
    tasks = {task_id: task for task_id, task in zip(task_ids, found, strict=True) if task}
    missing = set(task_ids) - set(tasks)
    if missing:
        raise unknown_tasks_error(request.items, missing, svc.settings.namespace)
    plan = plan_batch(request.items, tasks, parent_run_id=who.run_id)
    runs = await create_batch(svc, plan)
    created = any(not run.is_cached for run in runs)
    return JSONResponse(
        {"runs": [run.to_wire() for run in runs]}, status_code=201 if created else 200
    )


@child_run_router.post("/tasks/{task_id}/trigger")
async def trigger_task(
    task_id: str,
    svc: Annotated[Services, Depends(services)],
    who: Annotated[Caller, Depends(authenticated_caller)],
    request: Annotated[TriggerRequest | None, Body()] = None,
) -> JSONResponse:
    trigger = request or TriggerRequest()
    check_payload_size(trigger.payload)
    task = await _find_task(svc, task_id)
    if task is None:
        raise task_not_found(task_id, svc.settings.namespace)
    body = build_task_run(
        task, trigger, run_name_for(task_id, trigger.options), parent_run_id=who.run_id
    )
    planned = PlannedRun(
        index=0, body=body, task_id=task_id, idempotency_key=trigger.options.idempotency_key
    )
    run = await create_run(svc, planned)
    return JSONResponse(run.to_wire(), status_code=200 if run.is_cached else 201)


async def _read_run(svc: Services, run_id: str) -> dict[str, Any]:
    """The TaskRun `run_id`; a 404 when there is none."""
    if not is_object_name(run_id):
        raise run_not_found(run_id)
    try:
        return await svc.call(svc.cluster.get_run, run_id)
    except ObjectNotFound:
        raise run_not_found(run_id) from None


@child_run_router.get("/runs/{run_id}")
async def get_run(
    run_id: str,
    svc: Annotated[Services, Depends(services)],
    who: Annotated[Caller, Depends(authenticated_caller)],
) -> dict[str, Any]:
    run = await _read_run(svc, run_id)
    if not who.may_read(run):
        raise ApiError(
            403,
            "forbidden",
            f"run {run_id!r} was not triggered by run {who.run_id!r}: an attempt token may read "
            "only the runs its run triggered",
            {"id": run_id},
        )
    return run_view(run)


@router.post("/runs/{run_id}/cancel")
async def cancel_run(run_id: str, svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """Cancel a run that has not finished; the answer is the run as it is now.

    The run is marked as to be canceled (`cancelRequestedAt`); the operator then deletes its
    pod and ends it `Canceled` (at once when it has not started). Canceling again is
    harmless; a finished run is a 409 `run_finished`.
    """
    run = await _read_run(svc, run_id)
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


@router.post("/runs/{run_id}/replay", status_code=201)
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
    run = await _read_run(svc, run_id)
    body = build_replay(
        run, random_run_name(), payload=replay.payload, new_payload=replay.has_payload
    )
    task_id: str = body["spec"]["taskId"]
    planned = PlannedRun(index=0, body=body, task_id=task_id, idempotency_key=None)
    created = await create_run(svc, planned)
    return {**created.to_wire(), "taskId": task_id}


@router.post("/runs/{run_id}/reschedule")
async def reschedule_run(
    run_id: str, request: RescheduleRequest, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Move the start of a `Delayed` run: `delay` in seconds from now, or a time.

    Any other state is a 409 `run_not_delayed`. The answer is the run as it is now.
    """
    run = await _read_run(svc, run_id)
    conflict = reschedule_conflict(run)
    if conflict is not None:
        raise conflict
    when = wire_time(rescheduled_until(request, datetime.now(UTC)))
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
