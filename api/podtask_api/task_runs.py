"""The `TaskRun` a trigger becomes, under the run's id: `podtask._control.task_runs`'
run of the task (its config frozen, plus the trigger's options and payload), and what
only a caller's trigger has: an idempotency key's label and expiry, its parent run.

`build_task_run` turns a `Task`'s spec and a `TriggerRequest` into the object to create;
`plan_run` names it (`run_names`) and says what its creation needs to know (its
idempotency key). Pure, but for the clock: the route reads the Task, `run_creation`
creates the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from podtask._contract.kube_names import is_label_value
from podtask._contract.resources import TaskSpec
from podtask._contract.wire import LABEL_PARENT_RUN
from podtask._control.task_runs import run_labels, run_spec, task_run_object
from podtask_api.idempotency import key_marks
from podtask_api.run_names import idempotent_run_name, random_run_name
from podtask_api.trigger_requests import TriggerOptions, TriggerRequest


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
    spec = run_spec(task, request.payload, options, parent_run_id=parent_run_id, now=now)
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
