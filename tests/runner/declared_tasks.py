"""`make_task`: a `Task` declared in code, for tests that run `execute_attempt` in-process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podtask import QueueRef, RetryPolicy
from podtask._authoring.tasks import Task
from podtask.hooks import TaskHooks


def make_task(run: Callable[..., Any], hooks: TaskHooks | None = None, task_id: str = "t") -> Task:
    return Task(
        id=task_id,
        run=run,
        machine="micro",
        max_duration_seconds=None,
        ttl_seconds=None,
        module=__name__,
        source="test",
        hooks=hooks or TaskHooks(),
        declared_retry=RetryPolicy(),
        declared_queue=QueueRef(name=task_id),
    )
