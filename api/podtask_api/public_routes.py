"""The public endpoints: trigger a task, read a run. Each needs an API key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse
from podtask.resources import TaskSpec
from pydantic import ValidationError

from podtask_api.auth import require_api_key
from podtask_api.cluster import ObjectAlreadyExists, ObjectNotFound
from podtask_api.errors import ApiError
from podtask_api.run_views import run_view
from podtask_api.services import Services, services
from podtask_api.triggers import (
    TriggerRequest,
    build_task_run,
    check_payload_size,
    is_object_name,
    is_same_trigger,
    run_name_for,
)


def _authenticated(
    svc: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    settings = svc.settings
    require_api_key(authorization, settings.api_key_digests, settings.api_keys_required)


router = APIRouter(prefix="/api/v1", dependencies=[Depends(_authenticated)])


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


async def _read_task(svc: Services, task_id: str) -> TaskSpec:
    namespace = svc.settings.namespace
    if not is_object_name(task_id):
        raise task_not_found(task_id, namespace)
    try:
        task = await svc.call(svc.cluster.get_task, task_id)
    except ObjectNotFound:
        raise task_not_found(task_id, namespace) from None
    try:
        return TaskSpec.model_validate(task.get("spec") or {})
    except ValidationError as exc:
        raise ApiError(
            502,
            "invalid_task",
            f"the Task object {task_id!r} in the cluster is malformed; deploy it again",
            [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()],
        ) from None


@router.post("/tasks/{task_id}/trigger")
async def trigger_task(
    task_id: str,
    svc: Annotated[Services, Depends(services)],
    request: Annotated[TriggerRequest | None, Body()] = None,
) -> JSONResponse:
    trigger = request or TriggerRequest()
    check_payload_size(trigger.payload)
    task = await _read_task(svc, task_id)
    key = trigger.options.idempotency_key
    body = build_task_run(task, trigger, run_name_for(task_id, trigger.options))
    try:
        created = await svc.call(svc.cluster.create_run, body)
    except ObjectAlreadyExists:
        if key is None:
            raise ApiError(
                503, "run_name_taken", "a freshly drawn run name was taken; trigger again"
            ) from None
        existing = await _cached_run(svc, body["metadata"]["name"], task_id, key)
        return JSONResponse({"id": existing, "isCached": True}, status_code=200)
    return JSONResponse({"id": created["metadata"]["name"], "isCached": False}, status_code=201)


async def _cached_run(svc: Services, name: str, task_id: str, key: str) -> str:
    try:
        existing = await svc.call(svc.cluster.get_run, name)
    except ObjectNotFound:
        # Deleted between our create and our read; the caller may simply retry.
        raise ApiError(
            409, "idempotency_conflict", "the run for this idempotency key was just deleted"
        ) from None
    if not is_same_trigger(existing, task_id, key):
        raise ApiError(
            409,
            "idempotency_conflict",
            "this idempotency key collides with another run's; use a different key",
        )
    return name


@router.get("/runs/{run_id}")
async def get_run(run_id: str, svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    if not is_object_name(run_id):
        raise run_not_found(run_id)
    try:
        run = await svc.call(svc.cluster.get_run, run_id)
    except ObjectNotFound:
        raise run_not_found(run_id) from None
    return run_view(run)
