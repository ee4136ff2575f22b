"""The manifest: every task and queue that a set of task modules declares, as one JSON document.

`podtask index MODULE...` prints it, `podtask dev` registers its `Task` objects from it,
and a deploy sends it to the API. It is self-contained: each task carries its whole
configuration (module, queue with its limit, machine, full retry policy, max duration,
ttl, schedule, and the JSON schema of its payload model when it has one), and `queues` lists each
queue once with the one limit its tasks agree on.
Each queue becomes a `TaskQueue` object of the same name, so a queue's name must be a
valid Kubernetes object name (a DNS subdomain). camelCase in JSON, like every podtask
resource; durations in seconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticUserError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from podtask._authoring.modules import load_tasks
from podtask._authoring.tasks import TASK_ID_RULE, Task, is_valid_task_id
from podtask._contract.kube_names import QUEUE_NAME_PATTERN
from podtask._contract.limits import KIB, MAX_PAYLOAD_SCHEMA_BYTES, MAX_QUEUE_NAME_LENGTH
from podtask._contract.machines import PRESETS
from podtask._contract.resources import (
    QueueRef,
    RetryPolicy,
    TaskScheduleDeclaration,
    TaskSpec,
)
from podtask.errors import TaskDeclarationError

# RFC 1123 subdomain, as Kubernetes checks the names of objects such as TaskQueues.
_DNS_SUBDOMAIN = re.compile(QUEUE_NAME_PATTERN)


def is_valid_queue_name(name: str) -> bool:
    """Whether `name` can name a `TaskQueue` object (a DNS subdomain, RFC 1123) and be the
    label value of its runs and pods, by which the operator counts them: at most 63
    characters."""
    return len(name) <= MAX_QUEUE_NAME_LENGTH and bool(_DNS_SUBDOMAIN.match(name))


def payload_schema(model: type[BaseModel] | None) -> dict[str, Any] | None:
    """The JSON schema pydantic makes of a payload model (as it validates input); None
    without a model, or for one pydantic cannot describe (a field of an arbitrary type): the
    task works the same, the dashboard just has no example and no check to offer."""
    if model is None:
        return None
    try:
        return model.model_json_schema(mode="validation")
    except PydanticUserError:
        return None


def schema_size_problem(schema: dict[str, Any] | None) -> str | None:
    """Why a payload schema is too large for its `Task` object, or None."""
    if schema is None:
        return None
    size = len(json.dumps(schema, separators=(",", ":")).encode())
    if size <= MAX_PAYLOAD_SCHEMA_BYTES:
        return None
    return (
        f"its payload model's JSON schema is {size} bytes, more than "
        f"{MAX_PAYLOAD_SCHEMA_BYTES // KIB} KiB: split the model, or annotate the payload "
        "with a smaller one"
    )


class ManifestModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ManifestTask(ManifestModel):
    """One task as its module declares it."""

    id: str
    module: str = Field(description="What the runner imports: a file path or a dotted name.")
    version: str | None = None
    queue: QueueRef
    machine: str
    retry: RetryPolicy
    max_duration: int | None = Field(default=None, ge=1, description="Seconds.")
    ttl: int | None = Field(default=None, ge=1, description="Seconds.")
    schedule: TaskScheduleDeclaration | None = Field(
        default=None, description="The schedule it declares: a cron expression in a zone."
    )
    payload_schema: dict[str, Any] | None = Field(
        default=None, description="The JSON schema of the payload model, if the task has one."
    )

    # A manifest read back (by the API, from a deploy) is held to the rules `podtask.task`
    # applies to a declaration.
    @field_validator("id")
    @classmethod
    def _task_id(cls, value: str) -> str:
        if not is_valid_task_id(value):
            raise ValueError(f"invalid task id: {TASK_ID_RULE}")
        return value

    @field_validator("machine")
    @classmethod
    def _machine(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"unknown machine {value!r}; valid machines are: {', '.join(PRESETS)}")
        return value

    @field_validator("retry")
    @classmethod
    def _out_of_memory_machine(cls, value: RetryPolicy) -> RetryPolicy:
        oom = value.out_of_memory
        if oom is not None and oom.machine is not None and oom.machine not in PRESETS:
            raise ValueError(
                f"unknown out_of_memory machine {oom.machine!r}; valid machines are: "
                f"{', '.join(PRESETS)}"
            )
        return value

    @field_validator("payload_schema")
    @classmethod
    def _schema_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        problem = schema_size_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def task_spec(self, *, image: str, default_version: str) -> TaskSpec:
        """The spec of the `Task` object that deploys this task in `image`; its version is the
        manifest's, or `default_version` when the manifest has none."""
        return TaskSpec(
            task_id=self.id,
            image=image,
            module=self.module,
            version=self.version or default_version,
            retry=self.retry,
            queue=self.queue,
            machine=self.machine,
            max_duration_seconds=self.max_duration,
            ttl_seconds=self.ttl,
            schedule=self.schedule,
            payload_schema=self.payload_schema,
        )


def _located(task_id: str, sources: Mapping[str, str]) -> str:
    source = sources.get(task_id)
    return f"task {task_id!r}" + (f" (at {source})" if source else "")


def queues_of(
    tasks: Sequence[ManifestTask], sources: Mapping[str, str] | None = None
) -> list[QueueRef]:
    """Each queue the tasks use, once, sorted by name. A queue's name must be able to name its
    `TaskQueue` object, and tasks that share a queue must give it the same concurrency limit;
    a ValueError names the first queue (and its tasks) that breaks either rule."""
    sources = sources or {}
    first_user: dict[str, ManifestTask] = {}
    for task in tasks:
        if not is_valid_queue_name(task.queue.name):
            raise ValueError(
                f"queue {task.queue.name!r} of {_located(task.id, sources)} is not a valid queue "
                f"name: it names the queue's TaskQueue object and labels its runs and pods in "
                f"Kubernetes, so it must be at most {MAX_QUEUE_NAME_LENGTH} characters of "
                "lowercase letters, digits, '-' and '.', starting and ending with a letter or "
                "digit (for example 'emails' or 'emails.eu')"
            )
        earlier = first_user.setdefault(task.queue.name, task)
        if earlier.queue.concurrency_limit != task.queue.concurrency_limit:
            raise ValueError(
                f"queue {task.queue.name!r} has concurrency_limit "
                f"{earlier.queue.concurrency_limit} in {_located(earlier.id, sources)} but "
                f"{task.queue.concurrency_limit} in {_located(task.id, sources)}; a queue has one "
                "limit: declare it once with podtask.queue(...) and pass that to both tasks"
            )
    return [first_user[name].queue for name in sorted(first_user)]


class Manifest(ManifestModel):
    """The tasks (sorted by id) and their queues (sorted by name)."""

    tasks: list[ManifestTask]
    queues: list[QueueRef]

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        # A manifest read back (by the API, from a deploy) must be one `build_manifest` could
        # have made: unique ids, and exactly the queues its tasks use.
        ids = [task.id for task in self.tasks]
        repeated = sorted({task_id for task_id in ids if ids.count(task_id) > 1})
        if repeated:
            raise ValueError(f"task ids must be unique; repeated: {', '.join(repeated)}")
        if queues_of(self.tasks) != sorted(self.queues, key=lambda q: q.name):
            raise ValueError("queues must list exactly the queues of the tasks, with their limits")
        return self

    def to_wire(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> str:
        return json.dumps(self.to_wire(), indent=2)


def build_manifest(declared: Mapping[str, tuple[str, Task]]) -> Manifest:
    """The manifest of the tasks `podtask._authoring.modules.load_tasks` found
    (id → (module, task))."""
    sources = {task_id: task.source for task_id, (_, task) in declared.items()}
    tasks = []
    for task_id, (module_ref, task) in sorted(declared.items()):
        schema = payload_schema(task.payload_model)
        problem = schema_size_problem(schema)
        if problem is not None:
            raise TaskDeclarationError(f"{_located(task_id, sources)}: {problem}")
        tasks.append(
            ManifestTask(
                id=task_id,
                module=module_ref,
                queue=task.queue,
                machine=task.machine,
                retry=task.retry,
                max_duration=task.max_duration_seconds,
                ttl=task.ttl_seconds,
                schedule=task.schedule,
                payload_schema=schema,
            )
        )
    try:
        queues = queues_of(tasks, sources)
    except ValueError as exc:
        raise TaskDeclarationError(str(exc)) from None
    return Manifest(tasks=tasks, queues=queues)


def load_manifest(module_refs: Iterable[str]) -> Manifest:
    """Import the task modules (files, folders or dotted names) and build their manifest.

    Raises `TaskModuleImportError` (naming the module and the cause, declaration errors
    included) or `TaskDeclarationError`.
    """
    return build_manifest(load_tasks(module_refs))
