"""Triggering a task: the request's server-side checks, and the `TaskRun` it becomes.

The request's shape is `podtask._contract.trigger_request`'s, shared with the client;
`TriggerOptions` here adds the checks that need the server's view (the stored size of the
metadata, the machines on offer); the wire types it re-exports are read from here by the API's
modules. All pure: `build_task_run` turns a `Task`'s spec and a `TriggerRequest` into the TaskRun
object to create; the route only reads the Task and creates the result.
A batch trigger is checked item by item here (`check_batch_payloads`,
`plan_batch`) before anything is created, and every error names its item.

Run ids. A run triggered without an idempotency key gets `run-` + its creation time
counted down (so that Kubernetes, which lists objects in name order, lists the newest
first) + random characters. A run with a key gets `run-k<hash of task and key>-<n>`:
the n-th run of that key, n = 1, 2, … (a key released by a failed run or an expired
TTL gets the next n). That name is what makes concurrent identical triggers meet:
all of them try to create the same object, and all but one get an AlreadyExists.
`idempotency_decision` says, from the key's runs, whether one still holds the key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from podtask._contract.json_values import JsonValueError, checked_json_text, stored_size
from podtask._contract.limits import MAX_BATCH_ITEMS, MAX_METADATA_BYTES, MAX_PAYLOAD_BYTES
from podtask._contract.machines import PRESETS
from podtask._contract.resources import (
    RunPhase,
    TaskRunSpec,
    TaskSpec,
    format_timestamp,
    parse_timestamp,
)
from podtask._contract.trigger_request import JSON_INTEGER as JSON_INTEGER
from podtask._contract.trigger_request import MAX_DELAY_SECONDS as MAX_DELAY_SECONDS
from podtask._contract.trigger_request import Delay as Delay
from podtask._contract.trigger_request import IsoTime as IsoTime
from podtask._contract.trigger_request import WireTriggerOptions, WireTriggerRequest
from podtask._contract.trigger_request import duration_seconds as duration_seconds
from podtask._contract.wire import API_VERSION, GROUP, LABEL_QUEUE, LABEL_TASK, TASK_RUN_KIND
from podtask_api.errors import ApiError

RUN_NAME_PREFIX = "run-"
# Digits before letters, as in ASCII: fixed-width numbers in this alphabet sort as numbers.
_BASE36 = string.digits + string.ascii_lowercase
_TIME_DIGITS = 9
# The countdown starts here: ids begin with a digit (before the keyed runs' `k`) until the
# year 2863.
_TIME_SPAN_MS = 10 * 36**8
_RANDOM_DIGITS = 8
KEYED_RUN_PREFIX = RUN_NAME_PREFIX + "k"
_KEY_HASH_IN_NAME = 16

# On a run triggered with an idempotency key: the hash of its task and key (the label,
# to find the key's runs), and until when the run holds the key (the annotation).
LABEL_IDEMPOTENCY = f"{GROUP}/idempotency"
ANNOTATION_IDEMPOTENCY_EXPIRES_AT = f"{GROUP}/idempotency-key-expires-at"
_KEY_HASH_IN_LABEL = 40

# Trigger.dev's default: a key holds its run for 30 days.
DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS = 30 * 24 * 3600

# Kubernetes object names (RFC 1123 subdomain) and label values.
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class TriggerOptions(WireTriggerOptions):
    """The options of one trigger, as Trigger.dev names them (camelCase on the wire)."""

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        try:
            size = stored_size(checked_json_text(metadata))
        except JsonValueError as exc:
            raise ValueError(str(exc.problem.at("metadata"))) from None
        if size > MAX_METADATA_BYTES:
            raise ValueError(
                f"the metadata is {size} bytes of JSON, over the limit of {MAX_METADATA_BYTES} "
                f"bytes ({MAX_METADATA_BYTES // 1024} KiB); keep large data in the payload"
            )
        return metadata

    @field_validator("machine")
    @classmethod
    def _known_machine(cls, machine: str | None) -> str | None:
        if machine is not None and machine not in PRESETS:
            raise ValueError(
                f"unknown machine {machine!r}; valid machines are: {', '.join(PRESETS)}"
            )
        return machine


class TriggerRequest(WireTriggerRequest):
    options: TriggerOptions = Field(default_factory=TriggerOptions)


def is_object_name(name: str) -> bool:
    return len(name) <= 253 and bool(_OBJECT_NAME.match(name))


def encoded_size(value: Any, field: str) -> int:
    """The bytes `value` takes in the TaskRun as Kubernetes stores it; a 422 naming the place
    in it a TaskRun cannot hold (NaN, nested over `MAX_JSON_DEPTH`, a lone surrogate, …)."""
    try:
        text = checked_json_text(value)
    except JsonValueError as exc:
        problem = exc.problem.at(field)
        raise ApiError(
            422,
            f"invalid_{field}",
            f"invalid {problem.path} — {problem.message}",
            [{"field": problem.path, "message": problem.message, "type": problem.kind}],
        ) from None
    return stored_size(text)


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


def _base36(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 36)
        digits.append(_BASE36[digit])
    return "".join(reversed(digits))


def random_run_name(now: datetime | None = None) -> str:
    """A fresh run id whose name order is newest first: a countdown of `now`, then random."""
    when = now or datetime.now(UTC)
    millis = int(when.timestamp() * 1000)
    countdown = min(max(_TIME_SPAN_MS - 1 - millis, 0), _TIME_SPAN_MS - 1)
    suffix = "".join(secrets.choice(_BASE36) for _ in range(_RANDOM_DIGITS))
    return RUN_NAME_PREFIX + _base36(countdown, _TIME_DIGITS) + suffix


def _key_digest(task_id: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"{task_id}\0{idempotency_key}".encode()).hexdigest()


def idempotency_label(task_id: str, idempotency_key: str) -> str:
    """The value of `LABEL_IDEMPOTENCY` on every run of this task and key."""
    return _key_digest(task_id, idempotency_key)[:_KEY_HASH_IN_LABEL]


def idempotent_run_name(task_id: str, idempotency_key: str, generation: int) -> str:
    """The id of the `generation`-th run of this task and key: the same for every trigger."""
    digest = _key_digest(task_id, idempotency_key)[:_KEY_HASH_IN_NAME]
    return f"{KEYED_RUN_PREFIX}{digest}-{generation}"


def run_generation(name: str, task_id: str, idempotency_key: str) -> int | None:
    """Which run of this task and key `name` is (1, 2, …); None if it is not one of them."""
    stem = idempotent_run_name(task_id, idempotency_key, 0)[:-1]
    number = name[len(stem) :] if name.startswith(stem) else ""
    return int(number) if number.isdigit() and not number.startswith("0") else None


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


# Final phases that give the key back: only a Completed run keeps answering for its key.
_RELEASING_PHASES = frozenset(
    {
        RunPhase.FAILED,
        RunPhase.CRASHED,
        RunPhase.CANCELED,
        RunPhase.EXPIRED,
        RunPhase.TIMED_OUT,
        RunPhase.SYSTEM_FAILURE,
    }
)


def key_expires_at(run: Mapping[str, Any]) -> datetime | None:
    """Until when `run` holds its idempotency key, as its trigger asked."""
    metadata = run.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    expires = parse_timestamp(annotations.get(ANNOTATION_IDEMPOTENCY_EXPIRES_AT))
    if expires is not None:
        return expires
    # A run made before keys had a TTL (or whose annotation was removed): the default.
    created = parse_timestamp(metadata.get("creationTimestamp"))
    return created + timedelta(seconds=DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS) if created else None


def holds_key(run: Mapping[str, Any], now: datetime) -> bool:
    """Whether `run` still answers for its idempotency key at `now`.

    It does while it is live or Completed, within its key's TTL, and not being deleted.
    """
    if (run.get("metadata") or {}).get("deletionTimestamp"):
        return False
    phase = (run.get("status") or {}).get("phase")
    if phase in _RELEASING_PHASES:
        return False
    expires = key_expires_at(run)
    return expires is None or now < expires


@dataclass(frozen=True)
class IdempotencyDecision:
    """What a trigger with a key does: answer with `reuse`, or create run `generation`."""

    reuse: str | None
    generation: int


def idempotency_decision(
    runs: Sequence[Mapping[str, Any]], task_id: str, idempotency_key: str, now: datetime
) -> IdempotencyDecision:
    """Given the runs labelled with this key's hash, reuse the newest if it holds the key,
    else create the next generation."""
    newest: tuple[int, Mapping[str, Any]] | None = None
    for run in runs:
        name = str((run.get("metadata") or {}).get("name") or "")
        generation = run_generation(name, task_id, idempotency_key)
        if generation is None or not is_same_trigger(run, task_id, idempotency_key):
            continue  # a hash collision in the label: another key's run
        if newest is None or generation > newest[0]:
            newest = (generation, run)
    if newest is None:
        return IdempotencyDecision(reuse=None, generation=1)
    generation, run = newest
    if holds_key(run, now):
        return IdempotencyDecision(reuse=str(run["metadata"]["name"]), generation=generation)
    return IdempotencyDecision(reuse=None, generation=generation + 1)


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
    metadata: dict[str, Any] = {"name": name, "labels": run_labels(task)}
    if options.idempotency_key is not None:
        ttl = options.idempotency_key_ttl or DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS
        metadata["labels"][LABEL_IDEMPOTENCY] = idempotency_label(
            task.task_id, options.idempotency_key
        )
        metadata["annotations"] = {
            ANNOTATION_IDEMPOTENCY_EXPIRES_AT: format_timestamp(now + timedelta(seconds=ttl))
        }
    return {
        "apiVersion": API_VERSION,
        "kind": TASK_RUN_KIND,
        "metadata": metadata,
        "spec": spec.to_wire(),
    }


def is_same_trigger(existing: Mapping[str, Any], task_id: str, idempotency_key: str) -> bool:
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
            detail = exc.details[0]
            invalid.append(
                item_problem(index, detail["field"], detail["message"], type=detail["type"])
            )
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
    """The TaskRuns of a batch; items repeating a task and idempotency key share one run
    (the first such item's payload and options make it)."""
    runs: list[PlannedRun] = []
    run_of_item: list[int] = []
    by_name: dict[str, int] = {}
    when = now or datetime.now(UTC)
    for index, item in enumerate(items):
        # A microsecond apart, so that a batch waits in its queue in item order.
        planned = plan_run(
            tasks[item.task],
            item.trigger(),
            index=index,
            parent_run_id=parent_run_id,
            now=when + timedelta(microseconds=index),
        )
        while planned.name in by_name and planned.idempotency_key is None:
            # A clash of fresh names within the batch: draw again.
            planned = planned.named(random_run_name(when))
        if planned.name in by_name:
            earlier = runs[by_name[planned.name]]
            if (earlier.task_id, earlier.idempotency_key) != (item.task, planned.idempotency_key):
                problem = item_problem(
                    index,
                    "options.idempotencyKey",
                    f"its idempotency key collides with item {earlier.index}'s; use another key",
                    withItem=earlier.index,
                )
                raise ApiError(409, "idempotency_conflict", _first_and_count([problem]), [problem])
            run_of_item.append(by_name[planned.name])
            continue
        by_name[planned.name] = len(runs)
        run_of_item.append(len(runs))
        runs.append(planned)
    return BatchPlan(runs=runs, run_of_item=run_of_item)
