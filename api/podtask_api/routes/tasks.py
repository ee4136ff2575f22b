"""The deployed tasks and their queues: list them; read a queue; pause, resume and limit it.

Each route declares who may call it (`access`). What the API shows of a Task or a
TaskQueue, and the patches it makes, are `catalog_views`'. A queue change is a merge patch
on the TaskQueue's spec, which the operator watches and applies at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path

from podtask_api.api_models import QueueList, QueueView, TaskList
from podtask_api.catalog_views import (
    ConcurrencyRequest,
    concurrency_patch,
    pause_patch,
    queue_view,
    task_views,
)
from podtask_api.errors import error_responses
from podtask_api.lookups import patch_queue, read_queue
from podtask_api.routes.access import PUBLIC_ROUTE_ERRORS, Access, any_key, write_key
from podtask_api.services import ServicesDep

router = APIRouter(prefix="/api/v1", responses=PUBLIC_ROUTE_ERRORS)

QueueName = Annotated[str, Path(description="The queue's name.")]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


@router.get("/tasks", tags=["tasks"], response_model=TaskList, dependencies=[Depends(any_key)])
async def list_tasks(svc: ServicesDep) -> dict[str, Any]:
    """The deployed tasks, by id: each one's current version and configuration."""
    return {"data": task_views(await svc.call(svc.cluster.list_tasks))}


@router.get("/queues", tags=["queues"], response_model=QueueList, dependencies=[Depends(any_key)])
async def list_queues(svc: ServicesDep) -> dict[str, Any]:
    """The queues, by name, with their limits, whether paused, and their running and queued
    runs as the operator last counted them."""
    return {"data": [queue_view(queue) for queue in await svc.call(svc.cluster.list_queues)]}


def _on_one_queue(
    method: str, path: str, access: Access, *errors: int
) -> Callable[[Endpoint], Endpoint]:
    """The route of an endpoint on the queue `{name}`: it answers the queue's view, or a 404
    when there is no such queue."""
    return router.api_route(
        path,
        methods=[method],
        tags=["queues"],
        response_model=QueueView,
        responses=error_responses(*errors, 404),
        dependencies=[Depends(access)],
    )


@_on_one_queue("GET", "/queues/{name}", any_key)
async def get_queue(name: QueueName, svc: ServicesDep) -> dict[str, Any]:
    return queue_view(await read_queue(svc, name))


@_on_one_queue("POST", "/queues/{name}/pause", write_key)
async def pause_queue(name: QueueName, svc: ServicesDep) -> dict[str, Any]:
    """Start no more runs of the queue until it is resumed; running ones go on."""
    return queue_view(await patch_queue(svc, name, pause_patch(True)))


@_on_one_queue("POST", "/queues/{name}/resume", write_key)
async def resume_queue(name: QueueName, svc: ServicesDep) -> dict[str, Any]:
    """Start the queue's runs again, as its limit allows."""
    return queue_view(await patch_queue(svc, name, pause_patch(False)))


@_on_one_queue("PUT", "/queues/{name}/concurrency", write_key, 400, 413)
async def set_queue_concurrency(
    name: QueueName, request: ConcurrencyRequest, svc: ServicesDep
) -> dict[str, Any]:
    """Override the queue's concurrency limit, at once; null goes back to the declared one."""
    return queue_view(await patch_queue(svc, name, concurrency_patch(request)))
