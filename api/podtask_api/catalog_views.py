"""What the API shows of `Task` and `TaskQueue` objects, and the changes it makes to queues.

Pure functions of the objects as the cluster returns them (dicts); their shapes are the
models `TaskView` and `QueueView` in `api_models`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podtask._contract.limits import MAX_CONCURRENCY_LIMIT
from podtask._contract.resources import TaskQueueSpec, TaskQueueStatus, TaskSpec
from podtask._contract.trigger_request import JSON_INTEGER

log = logging.getLogger("podtask_api")

ConcurrencyLimit = Annotated[int, Field(ge=0, le=MAX_CONCURRENCY_LIMIT), JSON_INTEGER]


class ConcurrencyRequest(BaseModel):
    """`PUT /api/v1/queues/{name}/concurrency`: the queue's new limit, or null for its default."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    concurrency_limit: ConcurrencyLimit | None = Field(
        alias="concurrencyLimit",
        description="Runs of the queue that may execute at once (0 holds them all); null "
        "goes back to the limit the queue's tasks declare, else the operator's default.",
    )


def task_view(task: dict[str, Any]) -> dict[str, Any] | None:
    """The task as `GET /api/v1/tasks` lists it; None for an object that is not a Task."""
    try:
        spec = TaskSpec.model_validate(task.get("spec") or {})
    except ValidationError:
        return None
    retry = spec.retry
    return {
        "id": spec.task_id,
        "version": spec.version,
        "image": spec.image,
        "module": spec.module,
        "queue": {"name": spec.queue.name, "concurrencyLimit": spec.queue.concurrency_limit},
        "machine": spec.machine,
        "retry": {
            "maxAttempts": retry.max_attempts,
            "factor": retry.factor,
            "minTimeoutMs": retry.min_timeout_ms,
            "maxTimeoutMs": retry.max_timeout_ms,
            "randomize": retry.randomize,
            "outOfMemoryMachine": retry.out_of_memory.machine if retry.out_of_memory else None,
        },
        "maxDuration": spec.max_duration_seconds,
        "ttl": spec.ttl_seconds,
        "schedule": spec.schedule.to_wire() if spec.schedule is not None else None,
        "payloadSchema": spec.payload_schema,
    }


def task_views(tasks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The views of `tasks`, leaving out (with a warning) an object that is not a Task."""
    views = []
    for task in tasks:
        view = task_view(task)
        if view is None:
            name = (task.get("metadata") or {}).get("name")
            log.warning("the Task object %r is malformed; it is left out of the list", name)
            continue
        views.append(view)
    return views


def queue_view(queue: dict[str, Any]) -> dict[str, Any]:
    """The queue as the API shows it: its controls, and its counts as the operator wrote them."""
    try:
        spec = TaskQueueSpec.model_validate(queue.get("spec") or {})
    except ValidationError:
        spec = TaskQueueSpec()
    try:
        status = TaskQueueStatus.model_validate(queue.get("status") or {})
    except ValidationError:
        status = TaskQueueStatus()
    # A limit of the queue's own is in force at once; the operator writes the one it applies
    # otherwise (the declared one, else its default), which only it knows.
    in_force = spec.concurrency_limit
    return {
        "name": (queue.get("metadata") or {}).get("name"),
        "concurrencyLimit": spec.concurrency_limit,
        "limitInForce": status.limit_in_force if in_force is None else in_force,
        "paused": spec.paused,
        "running": status.running,
        "queued": status.queued,
    }


def pause_patch(paused: bool) -> dict[str, Any]:
    return {"spec": {"paused": paused}}


def concurrency_patch(request: ConcurrencyRequest) -> dict[str, Any]:
    # In a merge patch, null removes the field, which the operator reads as "no override".
    return {"spec": {"concurrencyLimit": request.concurrency_limit}}
