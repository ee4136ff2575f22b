"""Reaching the one object a route names: a 404 in the API's error shape when there is none.

A name that cannot name a Kubernetes object is a 404 without a cluster call; a run of a
batch not committed yet is a 404 too (`batch_visibility`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from podtask._contract.kube_names import is_object_name
from podtask._contract.resources import TaskSpec
from podtask_api.batch_visibility import is_visible
from podtask_api.cluster import ObjectNotFound
from podtask_api.errors import ApiError, malformed_object
from podtask_api.services import Services


def run_not_found(run_id: str) -> ApiError:
    return ApiError(404, "run_not_found", f"there is no run {run_id!r}", {"id": run_id})


def queue_not_found(name: str, namespace: str) -> ApiError:
    return ApiError(
        404,
        "queue_not_found",
        f"there is no queue {name!r} in namespace {namespace!r}: a queue exists once a task "
        "that declares it is deployed (`podtask deploy`, or `podtask dev`)",
        {"name": name},
    )


def task_not_found(task_id: str, namespace: str) -> ApiError:
    return ApiError(
        404,
        "task_not_found",
        f"task {task_id!r} is not deployed in namespace {namespace!r}: deploy the module "
        f"that declares it with `podtask deploy` (or run `podtask dev`) and trigger it again",
        {"taskId": task_id},
    )


async def _named(
    svc: Services,
    name: str,
    not_found: ApiError,
    operation: Callable[..., dict[str, Any]],
    *args: Any,
) -> dict[str, Any]:
    """`operation(name, *args)`, or `not_found` when nothing has that name."""
    if not is_object_name(name):
        raise not_found
    try:
        return await svc.call(operation, name, *args)
    except ObjectNotFound:
        raise not_found from None


async def read_run(svc: Services, run_id: str) -> dict[str, Any]:
    """The TaskRun `run_id`; a 404 when there is none (or its batch is not committed yet)."""
    run = await _named(svc, run_id, run_not_found(run_id), svc.cluster.get_run)
    if not await is_visible(svc, run):
        raise run_not_found(run_id)
    return run


async def patch_run(svc: Services, run_id: str, patch: dict[str, Any]) -> dict[str, Any]:
    """The TaskRun `run_id` with `patch` merged into it; a 404 when it is gone."""
    return await _named(svc, run_id, run_not_found(run_id), svc.cluster.merge_patch_run, patch)


async def read_queue(svc: Services, name: str) -> dict[str, Any]:
    """The TaskQueue `name`; a 404 when there is none."""
    not_found = queue_not_found(name, svc.settings.namespace)
    return await _named(svc, name, not_found, svc.cluster.get_queue)


async def patch_queue(svc: Services, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    """The TaskQueue `name` with `patch` merged into it; a 404 when there is none."""
    not_found = queue_not_found(name, svc.settings.namespace)
    return await _named(svc, name, not_found, svc.cluster.merge_patch_queue, patch)


async def find_task(svc: Services, task_id: str) -> TaskSpec | None:
    """The deployed task `task_id`, or None when there is none; a 502 when it is malformed.

    From the Tasks' catalog when it holds the task (how stale that may be: `task_catalog`),
    else from the cluster.
    """
    if not is_object_name(task_id):
        return None
    task = svc.tasks.lookup(task_id)
    if task is None:
        try:
            task = await svc.call(svc.cluster.get_task, task_id)
        except ObjectNotFound:
            return None
    try:
        return TaskSpec.model_validate(task.get("spec") or {})
    except ValidationError as exc:
        message = f"the Task object {task_id!r} in the cluster is malformed; deploy it again"
        raise malformed_object("invalid_task", message, exc) from None
