"""The `TaskRun` that runs a `Task`: the task's configuration frozen, plus a trigger's
options and payload, under the run's labels.

One builder for every way a run comes to be: the API's triggers (`podtask_api.task_runs`
names the run and adds what only a caller's trigger has: its idempotency key, its parent
run) and the operator's schedule ticks (`podtask_operator.schedule_ticks`), so that a
scheduled run is exactly what a trigger without options would make. Pure, but for the
clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from podtask._contract.kube_names import is_label_value
from podtask._contract.resources import TaskRunSpec, TaskSpec
from podtask._contract.trigger_request import WireTriggerOptions
from podtask._contract.wire import (
    API_VERSION,
    LABEL_QUEUE,
    LABEL_TASK,
    LABEL_TEST,
    TASK_RUN_KIND,
    TEST_LABEL_VALUE,
)


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


def run_spec(
    task: TaskSpec,
    payload: Any,
    options: WireTriggerOptions | None = None,
    *,
    parent_run_id: str | None = None,
    now: datetime | None = None,
) -> TaskRunSpec:
    """The spec of one run of `task`: its config frozen, changed and extended by `options`.

    `parent_run_id` comes from the caller's verified attempt token, never from a body.
    """
    options = options or WireTriggerOptions()
    now = now or datetime.now(UTC)
    retry = task.retry
    if options.max_attempts is not None:
        # The run's retry policy is a snapshot; the option simply changes its copy.
        retry = retry.model_copy(update={"max_attempts": options.max_attempts})
    return TaskRunSpec(
        task_id=task.task_id,
        version=task.version,
        image=task.image,
        module=task.module,
        machine=options.machine or task.machine,
        retry=retry,
        queue=task.queue,
        max_duration_seconds=options.max_duration or task.max_duration_seconds,
        payload=payload,
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


def task_run_object(metadata: dict[str, Any], spec: TaskRunSpec) -> dict[str, Any]:
    """The TaskRun to create, with this metadata and spec."""
    return {
        "apiVersion": API_VERSION,
        "kind": TASK_RUN_KIND,
        "metadata": metadata,
        "spec": spec.to_wire(),
    }
