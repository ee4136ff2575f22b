"""Triggering a task: the request's shape, its checks, and the `TaskRun` it becomes.

All pure: `build_task_run` turns a `Task`'s spec and a `TriggerRequest` into the
TaskRun object to create; the route only reads the Task and creates the result.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from podtask.limits import MAX_PAYLOAD_BYTES
from podtask.machines import PRESETS
from podtask.resources import API_VERSION, LABEL_QUEUE, LABEL_TASK, TaskRunSpec, TaskSpec
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

from podtask_api.errors import ApiError

RUN_NAME_PREFIX = "run-"
_RUN_NAME_ALPHABET = string.ascii_lowercase + string.digits
_RUN_NAME_SUFFIX_LENGTH = 12

# Kubernetes object names (RFC 1123 subdomain) and label values.
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

Tag = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TriggerOptions(BaseModel):
    """The options of one trigger, as Trigger.dev names them (camelCase on the wire)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    tags: list[Tag] = Field(default_factory=list, max_length=10)
    metadata: dict[str, Any] = Field(default_factory=dict)
    priority: int = 0
    concurrency_key: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    machine: str | None = None
    max_duration: int | None = Field(default=None, ge=1, description="Seconds.")
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    ttl: int | None = Field(
        default=None, ge=1, description="Seconds the run may wait to start before it expires."
    )
    delay: int | datetime | None = Field(
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

    @field_validator("delay")
    @classmethod
    def _delay_not_negative(cls, delay: int | datetime | None) -> int | datetime | None:
        if isinstance(delay, int) and delay < 0:
            raise ValueError("delay must be zero or more seconds, or a time")
        return delay


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


def _delay_until(delay: int | datetime | None, now: datetime) -> datetime | None:
    if delay is None:
        return None
    if isinstance(delay, datetime):
        return delay if delay.tzinfo is not None else delay.replace(tzinfo=UTC)
    return now + timedelta(seconds=delay) if delay > 0 else None


def run_labels(task: TaskSpec) -> dict[str, str]:
    labels = {LABEL_TASK: task.task_id}
    # A queue name that is not a valid label value is still the queue; it just has no label.
    if len(task.queue.name) <= 63 and _LABEL_VALUE.match(task.queue.name):
        labels[LABEL_QUEUE] = task.queue.name
    return labels


def build_task_run(
    task: TaskSpec, request: TriggerRequest, name: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """The TaskRun object for one trigger: the task's config frozen, plus options and payload."""
    options = request.options
    spec = TaskRunSpec(
        task_id=task.task_id,
        version=task.version,
        image=task.image,
        module=task.module,
        machine=options.machine or task.machine,
        retry=task.retry,
        queue=task.queue,
        max_duration_seconds=options.max_duration or task.max_duration_seconds,
        payload=request.payload,
        concurrency_key=options.concurrency_key,
        priority=options.priority,
        tags=list(options.tags),
        metadata=dict(options.metadata),
        idempotency_key=options.idempotency_key,
        ttl_seconds=options.ttl or task.ttl_seconds,
        delay_until=_delay_until(options.delay, now or datetime.now(UTC)),
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
