"""Triggering a task: the request's shape, its checks, and the `TaskRun` it becomes.

All pure: `build_task_run` turns a `Task`'s spec and a `TriggerRequest` into the
TaskRun object to create; the route only reads the Task and creates the result.
A batch trigger is checked item by item here (`check_batch_payloads`,
`plan_batch`) before anything is created, and every error names its item.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.alias_generators import to_camel

from podtask.limits import MAX_BATCH_ITEMS, MAX_PAYLOAD_BYTES
from podtask.machines import PRESETS
from podtask.resources import API_VERSION, LABEL_QUEUE, LABEL_TASK, TaskRunSpec, TaskSpec
from podtask_api.errors import ApiError

RUN_NAME_PREFIX = "run-"
_RUN_NAME_ALPHABET = string.ascii_lowercase + string.digits
_RUN_NAME_SUFFIX_LENGTH = 12

# Kubernetes object names (RFC 1123 subdomain) and label values.
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

Tag = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _whole_seconds_or_time(value: Any) -> Any:
    # Without this a number that is not a whole one (1.5) or a boolean would be read as a
    # Unix timestamp in 1970, silently meaning "no delay".
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError("delay must be whole seconds or a time")
    return int(value) if isinstance(value, float) else value


# A century: any longer is a mistake, and far longer would overflow the date arithmetic.
MAX_DELAY_SECONDS = 100 * 365 * 24 * 3600


def _delay_in_range(delay: int | datetime) -> int | datetime:
    if isinstance(delay, int) and delay < 0:
        raise ValueError("delay must be zero or more seconds, or a time")
    if isinstance(delay, int) and delay > MAX_DELAY_SECONDS:
        raise ValueError(f"delay must be at most {MAX_DELAY_SECONDS} seconds (100 years)")
    return delay


Delay = Annotated[
    int | datetime, BeforeValidator(_whole_seconds_or_time), AfterValidator(_delay_in_range)
]
"""A delay: seconds from now, or the time (ISO 8601; without a zone, UTC)."""


class TriggerOptions(BaseModel):
    """The options of one trigger, as Trigger.dev names them (camelCase on the wire)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    tags: list[Tag] = Field(default_factory=list, max_length=10)
    metadata: dict[str, Any] = Field(default_factory=dict)
    priority: int = 0
    concurrency_key: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    machine: str | None = None
    max_attempts: int | None = Field(
        default=None, ge=1, le=100, description="Overrides the task's retry.maxAttempts."
    )
    max_duration: int | None = Field(default=None, ge=1, description="Seconds.")
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    ttl: int | None = Field(
        default=None, ge=1, description="Seconds the run may wait to start before it expires."
    )
    delay: Delay | None = Field(
        default=None, description="Seconds from now, or the time, before the run is queued."
    )

    @field_validator("machine")
    @classmethod
    def _known_machine(cls, machine: str | None) -> str | None:
        if machine is not None and machine not in PRESETS:
            raise ValueError(
                f"unknown machine {machine!r}; valid machines are: {', '.join(PRESETS)}"
            )
        return machine


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: Any = None
    options: TriggerOptions = Field(default_factory=TriggerOptions)


def is_object_name(name: str) -> bool:
    return len(name) <= 253 and bool(_OBJECT_NAME.match(name))


def encoded_size(value: Any, field: str) -> int:
    """The size of `value` as compact UTF-8 JSON; NaN and Infinity are refused, not sized."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise ApiError(
            422,
            f"invalid_{field}",
            f"the {field} is not valid JSON: {exc}",
            [{"field": field, "message": str(exc), "type": "json_invalid"}],
        ) from None
    return len(text.encode())


def check_payload_size(payload: Any, limit: int = MAX_PAYLOAD_BYTES) -> None:
    size = encoded_size(payload, "payload")
    if size > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"the payload is {size} bytes of JSON, over the limit of {limit} bytes "
            f"({limit // 1024} KiB); pass a reference to large data instead",
            {"size": size, "limit": limit},
        )


def random_run_name() -> str:
    suffix = "".join(secrets.choice(_RUN_NAME_ALPHABET) for _ in range(_RUN_NAME_SUFFIX_LENGTH))
    return RUN_NAME_PREFIX + suffix


def idempotent_run_name(task_id: str, idempotency_key: str) -> str:
    """The same task and key always name the same run, so the cluster dedupes creates."""
    digest = hashlib.sha256(f"{task_id}\0{idempotency_key}".encode()).hexdigest()
    return RUN_NAME_PREFIX + digest[:_RUN_NAME_SUFFIX_LENGTH]


def run_name_for(task_id: str, options: TriggerOptions) -> str:
    if options.idempotency_key is not None:
        return idempotent_run_name(task_id, options.idempotency_key)
    return random_run_name()


def delay_until(delay: int | datetime | None, now: datetime) -> datetime | None:
    """When a run given `delay` (seconds from `now`, or a time) is due; None for no delay."""
    if delay is None:
        return None
    if isinstance(delay, datetime):
        return delay if delay.tzinfo is not None else delay.replace(tzinfo=UTC)
    return now + timedelta(seconds=delay) if delay > 0 else None


def labels_for(task_id: str, queue_name: str) -> dict[str, str]:
    """The labels of a run of `task_id` in `queue_name`."""
    labels = {LABEL_TASK: task_id}
    # A queue name that is not a valid label value is still the queue; it just has no label.
    if len(queue_name) <= 63 and _LABEL_VALUE.match(queue_name):
        labels[LABEL_QUEUE] = queue_name
    return labels


def run_labels(task: TaskSpec) -> dict[str, str]:
    return labels_for(task.task_id, task.queue.name)


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
        triggered_at=now,
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "TaskRun",
        "metadata": {"name": name, "labels": run_labels(task)},
        "spec": spec.to_wire(),
    }


def is_same_trigger(existing: dict[str, Any], task_id: str, idempotency_key: str) -> bool:
    """Whether a run found under an idempotent name really is for this task and key."""
    spec = existing.get("spec") or {}
    return spec.get("taskId") == task_id and spec.get("idempotencyKey") == idempotency_key


class BatchTriggerItem(BaseModel):
    """One item of a batch: which task, with what payload and options."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, description="The task id.")
    payload: Any = None
    options: TriggerOptions = Field(default_factory=TriggerOptions)

    def trigger(self) -> TriggerRequest:
        return TriggerRequest(payload=self.payload, options=self.options)


class BatchTriggerRequest(BaseModel):
    """`POST /api/v1/tasks/batch`: up to MAX_BATCH_ITEMS triggers, created all or none."""

    model_config = ConfigDict(extra="forbid")

    items: list[BatchTriggerItem] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


def item_problem(index: int, field: str, message: str, **extra: Any) -> dict[str, Any]:
    """One entry of a batch error's details: the item, its field, what is wrong."""
    path = f"items.{index}.{field}" if field else f"items.{index}"
    return {"item": index, "field": path, "message": message, **extra}


def _first_and_count(problems: Sequence[dict[str, Any]]) -> str:
    first = problems[0]
    more = len(problems) - 1
    tail = f" (and {more} more item{'s' if more > 1 else ''})" if more else ""
    return f"item {first['item']}: {first['message']}{tail}"


def check_batch_payloads(items: Sequence[BatchTriggerItem], limit: int = MAX_PAYLOAD_BYTES) -> None:
    """422 for payloads that are not JSON, then 413 for payloads over the limit, naming items."""
    invalid: list[dict[str, Any]] = []
    too_large: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            size = encoded_size(item.payload, "payload")
        except ApiError as exc:
            invalid.append(item_problem(index, "payload", exc.message, type="json_invalid"))
            continue
        if size > limit:
            too_large.append(
                item_problem(
                    index,
                    "payload",
                    f"the payload is {size} bytes of JSON, over the limit of {limit} bytes "
                    f"({limit // 1024} KiB)",
                    size=size,
                    limit=limit,
                )
            )
    if invalid:
        raise ApiError(422, "invalid_payload", _first_and_count(invalid), invalid)
    if too_large:
        raise ApiError(
            413,
            "payload_too_large",
            _first_and_count(too_large) + "; pass a reference to large data instead",
            too_large,
        )


def unknown_tasks_error(
    items: Sequence[BatchTriggerItem], missing: set[str], namespace: str
) -> ApiError:
    """404 naming every item whose task is not deployed."""
    problems = [
        item_problem(index, "task", f"task {item.task!r} is not deployed", taskId=item.task)
        for index, item in enumerate(items)
        if item.task in missing
    ]
    return ApiError(
        404,
        "task_not_found",
        f"{_first_and_count(problems)} in namespace {namespace!r}: deploy the module that "
        "declares it with `podtask deploy` (or run `podtask dev`) and trigger the batch again; "
        "no run of this batch was created",
        problems,
    )


@dataclass(frozen=True)
class PlannedRun:
    """One TaskRun to create, and what its idempotency check needs.

    `index` is the batch item that first names it (0 for a single trigger).
    """

    index: int
    body: dict[str, Any]
    task_id: str
    idempotency_key: str | None

    @property
    def name(self) -> str:
        name: str = self.body["metadata"]["name"]
        return name


@dataclass(frozen=True)
class BatchPlan:
    """The distinct runs to create, and for each item, which of them it is."""

    runs: list[PlannedRun]
    run_of_item: list[int]

    def is_repeat(self, index: int) -> bool:
        """Whether item `index` repeats an earlier item's idempotency key (so it is cached)."""
        return self.runs[self.run_of_item[index]].index != index


def plan_batch(
    items: Sequence[BatchTriggerItem],
    tasks: Mapping[str, TaskSpec],
    *,
    parent_run_id: str | None = None,
    now: datetime | None = None,
) -> BatchPlan:
    """The TaskRuns of a batch; items repeating a task and idempotency key share one run."""
    runs: list[PlannedRun] = []
    run_of_item: list[int] = []
    by_name: dict[str, int] = {}
    when = now or datetime.now(UTC)
    for index, item in enumerate(items):
        name = run_name_for(item.task, item.options)
        while name in by_name and item.options.idempotency_key is None:
            name = random_run_name()  # a clash of fresh names within the batch: draw again
        key = item.options.idempotency_key
        if name in by_name:
            earlier = runs[by_name[name]]
            if (earlier.task_id, earlier.idempotency_key) != (item.task, key):
                problem = item_problem(
                    index,
                    "options.idempotencyKey",
                    f"its idempotency key collides with item {earlier.index}'s; use another key",
                    withItem=earlier.index,
                )
                raise ApiError(409, "idempotency_conflict", _first_and_count([problem]), [problem])
            run_of_item.append(by_name[name])
            continue
        body = build_task_run(
            tasks[item.task],
            item.trigger(),
            name,
            parent_run_id=parent_run_id,
            # A microsecond apart, so that a batch waits in its queue in item order.
            now=when + timedelta(microseconds=index),
        )
        by_name[name] = len(runs)
        run_of_item.append(len(runs))
        runs.append(PlannedRun(index=index, body=body, task_id=item.task, idempotency_key=key))
    return BatchPlan(runs=runs, run_of_item=run_of_item)
