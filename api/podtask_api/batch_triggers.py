"""A batch trigger: its request, its checks item by item, and its plan, before anything is
created (`run_creation` creates it, all or none).

Every error names its item (`item_problem`): the first one in the message, each in the
details. Items that repeat a task and idempotency key share one run. Pure, but for the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from podtask._contract.limits import MAX_BATCH_ITEMS, MAX_PAYLOAD_BYTES
from podtask._contract.resources import TaskSpec
from podtask_api.errors import ApiError
from podtask_api.run_names import random_run_name
from podtask_api.stored_json import encoded_size
from podtask_api.task_runs import PlannedRun, plan_run
from podtask_api.trigger_requests import TriggerOptions, TriggerRequest


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
