"""The deployed tasks and their queues: list them; pause, resume and limit a queue.

`read_routes` only read and `write_routes` change something; `public_routes` mounts them
on its routers, which check the caller. A queue change is a merge patch on the
TaskQueue's spec, which the operator watches and applies at once.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from podtask_api.api_models import QueueList, QueueView, TaskList
from podtask_api.catalog_views import (
    ConcurrencyRequest,
    concurrency_patch,
    pause_patch,
    queue_view,
    task_view,
)
from podtask_api.cluster import ObjectNotFound
from podtask_api.errors import CLUSTER_ERRORS, error_responses
from podtask_api.kube_names import is_object_name
from podtask_api.lookups import queue_not_found, read_queue
from podtask_api.services import Services, services

log = logging.getLogger("podtask_api")

read_routes = APIRouter()
write_routes = APIRouter(tags=["queues"])

QueueName = Annotated[str, Path(description="The queue's name.")]


@read_routes.get(
    "/tasks", tags=["tasks"], response_model=TaskList, responses=error_responses(*CLUSTER_ERRORS)
)
async def list_tasks(svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """The deployed tasks, by id: each one's current version and configuration."""
    views = []
    for task in await svc.call(svc.cluster.list_tasks):
        view = task_view(task)
        if view is None:
            name = (task.get("metadata") or {}).get("name")
            log.warning("the Task object %r is malformed; it is left out of the list", name)
            continue
        views.append(view)
    return {"data": views}


@read_routes.get(
    "/queues", tags=["queues"], response_model=QueueList, responses=error_responses(*CLUSTER_ERRORS)
)
async def list_queues(svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """The queues, by name, with their limits, whether paused, and their running and queued
    runs as the operator last counted them."""
    return {"data": [queue_view(queue) for queue in await svc.call(svc.cluster.list_queues)]}


@read_routes.get(
    "/queues/{name}",
    tags=["queues"],
    response_model=QueueView,
    responses=error_responses(404, 422, *CLUSTER_ERRORS),
)
async def get_queue(name: QueueName, svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    return queue_view(await read_queue(svc, name))


async def _patch_queue(svc: Services, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    if not is_object_name(name):
        raise queue_not_found(name, svc.settings.namespace)
    try:
        return queue_view(await svc.call(svc.cluster.merge_patch_queue, name, patch))
    except ObjectNotFound:
        raise queue_not_found(name, svc.settings.namespace) from None


@write_routes.post(
    "/queues/{name}/pause",
    response_model=QueueView,
    responses=error_responses(404, 422, *CLUSTER_ERRORS),
)
async def pause_queue(
    name: QueueName, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Start no more runs of the queue until it is resumed; running ones go on."""
    return await _patch_queue(svc, name, pause_patch(True))


@write_routes.post(
    "/queues/{name}/resume",
    response_model=QueueView,
    responses=error_responses(404, 422, *CLUSTER_ERRORS),
)
async def resume_queue(
    name: QueueName, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Start the queue's runs again, as its limit allows."""
    return await _patch_queue(svc, name, pause_patch(False))


@write_routes.put(
    "/queues/{name}/concurrency",
    response_model=QueueView,
    responses=error_responses(400, 404, 413, 422, *CLUSTER_ERRORS),
)
async def set_queue_concurrency(
    name: QueueName, request: ConcurrencyRequest, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Override the queue's concurrency limit, at once; null goes back to the declared one."""
    return await _patch_queue(svc, name, concurrency_patch(request))
