"""The public endpoints: trigger tasks, one or a batch, and read a run.

Two routers, by who may call them. `router` takes API keys only (a run's attempt
token gets a 403): every endpoint goes there unless a task needs it from inside
its run. `child_run_router` also takes a run's attempt token, for what a task
does with its child runs: trigger them (they get the token's run as
`parentRunId`) and read them (only them).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from podtask.resources import TaskSpec
from podtask_api.auth import Caller, authenticate_caller, require_api_key_holder
from podtask_api.cluster import ObjectNotFound
from podtask_api.errors import ApiError
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


router = APIRouter(prefix="/api/v1", dependencies=[Depends(_api_key_holder)])
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


@child_run_router.get("/runs/{run_id}")
async def get_run(
    run_id: str,
    svc: Annotated[Services, Depends(services)],
    who: Annotated[Caller, Depends(authenticated_caller)],
) -> dict[str, Any]:
    if not is_object_name(run_id):
        raise run_not_found(run_id)
    try:
        run = await svc.call(svc.cluster.get_run, run_id)
    except ObjectNotFound:
        raise run_not_found(run_id) from None
    if not who.may_read(run):
        raise ApiError(
            403,
            "forbidden",
            f"run {run_id!r} was not triggered by run {who.run_id!r}: an attempt token may read "
            "only the runs its run triggered",
            {"id": run_id},
        )
    return run_view(run)
