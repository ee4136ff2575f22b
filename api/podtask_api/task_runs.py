"""The `TaskRun` a trigger becomes: the task's configuration frozen, plus the trigger's
options and payload, under the run's id and labels.

`build_task_run` turns a `Task`'s spec and a `TriggerRequest` into the object to create;
`plan_run` names it (`run_names`) and says what its creation needs to know (its
idempotency key). Pure, but for the clock: the route reads the Task, `run_creation`
creates the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from podtask._contract.resources import TaskRunSpec, TaskSpec
from podtask._contract.wire import (
    API_VERSION,
    LABEL_PARENT_RUN,
    LABEL_QUEUE,
    LABEL_TASK,
    LABEL_TEST,
    TASK_RUN_KIND,
    TEST_LABEL_VALUE,
)
from podtask_api.idempotency import key_marks
from podtask_api.kube_names import is_label_value
from podtask_api.run_names import idempotent_run_name, random_run_name
from podtask_api.trigger_requests import TriggerOptions, TriggerRequest


def delay_until(delay: int | datetime | None, now: datetime) -> datetime | None:
    """When a run given `delay` (seconds from `now`, or a time) is due; None for no delay."""
    if delay is None:
        return None
    if isinstance(delay, datetime):
        return delay if delay.tzinfo is not None else delay.replace(tzinfo=UTC)
    return now + timedelta(seconds=delay) if delay > 0 else None


def labels_for(task_id: str, queue_name: str, *, is_test: bool = False) -> dict[str, str]:
    """The labels of a run of `task_id` in `queue_name` (a test run's say so)."""
    labels = {LABEL_TASK: task_id}
    # A queue name that is not a valid label value is still the queue; it just has no label.
    if is_label_value(queue_name):
        labels[LABEL_QUEUE] = queue_name
    if is_test:
        labels[LABEL_TEST] = TEST_LABEL_VALUE
    return labels


def run_labels(task: TaskSpec, *, is_test: bool = False) -> dict[str, str]:
    return labels_for(task.task_id, task.queue.name, is_test=is_test)


def task_run_object(metadata: dict[str, Any], spec: TaskRunSpec) -> dict[str, Any]:
    """The TaskRun to create, with this metadata and spec."""
    return {
        "apiVersion": API_VERSION,
        "kind": TASK_RUN_KIND,
        "metadata": metadata,
        "spec": spec.to_wire(),
    }


def build_task_run(
    task: TaskSpec,
    request: TriggerRequest,
    name: str,
    *,
    parent_run_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The TaskRun object for one trigger: the task's config frozen, plus options and payload.

    `parent_run_id` comes from the caller's verified attempt token, never from the body.
    """
    options = request.options
    now = now or datetime.now(UTC)
    retry = task.retry
    if options.max_attempts is not None:
        # The run's retry policy is a snapshot; the option simply changes its copy.
        retry = retry.model_copy(update={"max_attempts": options.max_attempts})
    spec = TaskRunSpec(
        task_id=task.task_id,
        version=task.version,
        image=task.image,
        module=task.module,
        machine=options.machine or task.machine,
        retry=retry,
        queue=task.queue,
        max_duration_seconds=options.max_duration or task.max_duration_seconds,
        payload=request.payload,
        concurrency_key=options.concurrency_key,
        priority=options.priority,
        tags=list(options.tags),
        metadata=dict(options.metadata),
        idempotency_key=options.idempotency_key,
        ttl_seconds=options.ttl or task.ttl_seconds,
        delay_until=delay_until(options.delay, now),
        parent_run_id=parent_run_id,
        is_test=options.is_test,
        triggered_at=now,
    )
    metadata: dict[str, Any] = {"name": name, "labels": run_labels(task, is_test=spec.is_test)}
    if options.idempotency_key is not None:
        label, annotations = key_marks(
            task.task_id, options.idempotency_key, options.idempotency_key_ttl, now
        )
        metadata["labels"].update(label)
        metadata["annotations"] = annotations
    if parent_run_id is not None and is_label_value(parent_run_id):
        metadata["labels"][LABEL_PARENT_RUN] = parent_run_id
    return task_run_object(metadata, spec)


@dataclass(frozen=True)
class PlannedRun:
    """One TaskRun to create, and what its idempotency check needs.

    `index` is the batch item that first names it (0 for a single trigger). A run with a
    key is planned under the name of the key's first run; `named` gives it the name of the
    generation its creation settles on.
    """

    index: int
    body: dict[str, Any]
    task_id: str
    idempotency_key: str | None

    @property
    def name(self) -> str:
        name: str = self.body["metadata"]["name"]
        return name

    def named(self, name: str) -> PlannedRun:
        body = {**self.body, "metadata": {**self.body["metadata"], "name": name}}
        return PlannedRun(self.index, body, self.task_id, self.idempotency_key)


def run_name_for(task_id: str, options: TriggerOptions, now: datetime | None = None) -> str:
    """The name to plan a run under: its key's first run's, or a fresh one."""
    if options.idempotency_key is not None:
        return idempotent_run_name(task_id, options.idempotency_key, 1)
    return random_run_name(now)


def plan_run(
    task: TaskSpec,
    request: TriggerRequest,
    *,
    index: int = 0,
    parent_run_id: str | None = None,
    now: datetime | None = None,
) -> PlannedRun:
    """The TaskRun of one trigger, ready to create."""
    when = now or datetime.now(UTC)
    name = run_name_for(task.task_id, request.options, when)
    body = build_task_run(task, request, name, parent_run_id=parent_run_id, now=when)
    return PlannedRun(index, body, task.task_id, request.options.idempotency_key)
