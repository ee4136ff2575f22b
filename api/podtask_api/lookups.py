"""Reading the one object a route names: a 404 in the API's error shape when there is none."""

from __future__ import annotations

from typing import Any

from podtask_api.batch_visibility import is_visible
from podtask_api.cluster import ObjectNotFound
from podtask_api.errors import ApiError
from podtask_api.services import Services
from podtask_api.triggers import is_object_name


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


async def read_run(svc: Services, run_id: str) -> dict[str, Any]:
    """The TaskRun `run_id`; a 404 when there is none (or its batch is not committed yet)."""
    if not is_object_name(run_id):
        raise run_not_found(run_id)
    try:
        run = await svc.call(svc.cluster.get_run, run_id)
    except ObjectNotFound:
        raise run_not_found(run_id) from None
    if not await is_visible(svc, run):
        raise run_not_found(run_id)
    return run


async def read_queue(svc: Services, name: str) -> dict[str, Any]:
    """The TaskQueue `name`; a 404 when there is none."""
    if not is_object_name(name):
        raise queue_not_found(name, svc.settings.namespace)
    try:
        return await svc.call(svc.cluster.get_queue, name)
    except ObjectNotFound:
        raise queue_not_found(name, svc.settings.namespace) from None
