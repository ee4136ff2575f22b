"""What a request about schedules asks for, and what it becomes in the cluster.

- `ScheduleRequest` (`POST /api/v1/schedules`) and `ScheduleUpdate` (`PUT .../{id}`): the
  bodies, their cron and timezone checked by the contract's rules (`CronExpression`,
  `TimezoneName`), so that a bad one is a 422 naming its field.
- `plan_creation`: a create with a `deduplicationKey` whose schedule exists updates it
  (`ScheduleChange`), else creates one (`NewSchedule`) under the name the key gives
  (the contract's `imperative_schedule_name`), so that creating the same key twice finds
  the one schedule.
- `update_patch`, `activity_patch`: the merge patches of a PUT and of activate/deactivate.
- `declarative_conflict`: a DECLARATIVE schedule is changed where its task declares it.
- `ScheduleFilters`: the filters of `GET /api/v1/schedules`, paged as runs are
  (`run_listing.list_page`).

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

# `podtask._contract.schedules` imports croniter only where a cron expression is read (task
# pods read none); the API reads them, so it imports croniter at start: its import runs a
# process (`file -b python`, through platform.architecture), not to be run inside the event
# loop at the first schedule.
import croniter  # noqa: F401
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from podtask._contract.limits import (
    MAX_SCHEDULE_DEDUPLICATION_KEY_LENGTH,
    MAX_SCHEDULE_EXTERNAL_ID_LENGTH,
)
from podtask._contract.resources import (
    CronExpression,
    ScheduleType,
    TaskId,
    TaskScheduleSpec,
    TimezoneName,
)
from podtask._contract.schedules import DEFAULT_TIMEZONE
from podtask._contract.wire import API_VERSION, LABEL_TASK, TASK_SCHEDULE_KIND
from podtask_api.errors import ApiError

ExternalId = Annotated[str, Field(min_length=1, max_length=MAX_SCHEDULE_EXTERNAL_ID_LENGTH)]
DeduplicationKey = Annotated[
    str, Field(min_length=1, max_length=MAX_SCHEDULE_DEDUPLICATION_KEY_LENGTH)
]


class ScheduleRequest(BaseModel):
    """`POST /api/v1/schedules`: a schedule of a deployed task."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    task: TaskId = Field(description="The id of the task to run (deployed).")
    cron: CronExpression = Field(
        description="5 fields (minute hour day-of-month month day-of-week), or @yearly, "
        "@monthly, @weekly, @daily, @hourly.",
        examples=["0 9 * * 1-5"],
    )
    timezone: TimezoneName = Field(
        default=DEFAULT_TIMEZONE,
        description="The IANA zone the cron's times are in (`GET /api/v1/timezones`).",
        examples=["Europe/Paris"],
    )
    external_id: ExternalId | None = Field(
        default=None,
        alias="externalId",
        description="Yours (a user's id, say); the task's payload carries it.",
    )
    deduplication_key: DeduplicationKey | None = Field(
        default=None,
        alias="deduplicationKey",
        description="Creating a schedule of the same task with the same key again updates "
        "that schedule instead of making a second one.",
    )
    active: bool = Field(default=True, description="Whether its ticks trigger runs.")


class ScheduleUpdate(BaseModel):
    """`PUT /api/v1/schedules/{id}`: the fields to change; those left out keep their value
    (`externalId: null` removes it)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    task: TaskId | None = None
    cron: CronExpression | None = None
    timezone: TimezoneName | None = None
    external_id: ExternalId | None = Field(default=None, alias="externalId")

    @field_validator("task", "cron", "timezone", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("null", "may be left out (to keep it), but not null")
        return value


def _labels(task_id: str) -> dict[str, str]:
    return {LABEL_TASK: task_id}


def _spec(request: ScheduleRequest) -> dict[str, Any]:
    return TaskScheduleSpec(
        task_id=request.task,
        cron=request.cron,
        timezone=request.timezone,
        type=ScheduleType.IMPERATIVE,
        active=request.active,
        external_id=request.external_id,
        deduplication_key=request.deduplication_key,
    ).to_wire()


@dataclass(frozen=True)
class NewSchedule:
    """Create this TaskSchedule."""

    body: dict[str, Any]


@dataclass(frozen=True)
class ScheduleChange:
    """Merge `patch` into the existing TaskSchedule `name`."""

    name: str
    patch: dict[str, Any]


def plan_creation(
    request: ScheduleRequest, name: str, existing: Mapping[str, Any] | None
) -> NewSchedule | ScheduleChange:
    """What `POST /api/v1/schedules` does: create the schedule `name`, or, when it exists
    (its deduplication key found it), make it what the request says: task, cron, timezone,
    externalId and active all as given (their defaults when left out)."""
    spec = _spec(request)
    if existing is None:
        metadata = {"name": name, "labels": _labels(request.task)}
        body = {"apiVersion": API_VERSION, "kind": TASK_SCHEDULE_KIND, "metadata": metadata}
        return NewSchedule({**body, "spec": spec})
    if (conflict := declarative_conflict(existing)) is not None:
        raise conflict
    # null in a merge patch removes the field: an externalId no longer given goes.
    patch_spec: dict[str, Any] = {"externalId": None, **spec}
    return ScheduleChange(name, {"metadata": {"labels": _labels(request.task)}, "spec": patch_spec})


def update_patch(update: ScheduleUpdate) -> dict[str, Any]:
    """The merge patch of `PUT /api/v1/schedules/{id}`: the fields the body holds."""
    given = update.model_fields_set
    spec: dict[str, Any] = {}
    patch: dict[str, Any] = {"spec": spec}
    if "task" in given and update.task is not None:
        spec["taskId"] = update.task
        patch["metadata"] = {"labels": _labels(update.task)}
    if "cron" in given:
        spec["cron"] = update.cron
    if "timezone" in given:
        spec["timezone"] = update.timezone
    if "external_id" in given:
        spec["externalId"] = update.external_id
    return patch


def activity_patch(active: bool) -> dict[str, Any]:
    return {"spec": {"active": active}}


def schedule_not_found(schedule_id: str) -> ApiError:
    return ApiError(
        404, "schedule_not_found", f"there is no schedule {schedule_id!r}", {"id": schedule_id}
    )


def schedule_type(schedule: Mapping[str, Any]) -> str:
    spec = schedule.get("spec") or {}
    return str(spec.get("type") or ScheduleType.IMPERATIVE.value)


def declarative_conflict(schedule: Mapping[str, Any]) -> ApiError | None:
    """The 409 for changing or deleting a DECLARATIVE schedule: its task's declaration
    (`@task(schedule=...)`) owns it, and the next deploy would undo the change."""
    if schedule_type(schedule) != ScheduleType.DECLARATIVE.value:
        return None
    name = (schedule.get("metadata") or {}).get("name")
    task_id = (schedule.get("spec") or {}).get("taskId")
    return ApiError(
        409,
        "declarative_schedule",
        f"schedule {name!r} is declared by task {task_id!r} (`@task(schedule=...)`): change "
        "it where the task declares it, and deploy; it may only be activated or deactivated "
        "here",
        {"id": name, "task": task_id},
    )


def unknown_task(task_id: str, namespace: str) -> ApiError:
    """The 422 for a schedule of a task that is not deployed, naming the field `task`."""
    message = (
        f"task {task_id!r} is not deployed in namespace {namespace!r}: deploy the module that "
        "declares it (`podtask deploy`, or `podtask dev`), then create its schedule"
    )
    return ApiError(
        422,
        "invalid_request",
        f"invalid task — {message}",
        [{"field": "task", "message": message, "type": "task_not_found"}],
    )


@dataclass(frozen=True)
class ScheduleFilters:
    """What `GET /api/v1/schedules` may filter on: the task (by its label), the type and
    whether active (here)."""

    task_id: str | None = None
    type: str | None = None
    active: bool | None = None

    def label_selector(self) -> str | None:
        return None if self.task_id is None else f"{LABEL_TASK}={self.task_id}"

    @property
    def filters_here(self) -> bool:
        return self.type is not None or self.active is not None

    def digest(self) -> str:
        canonical = json.dumps(["schedules", self.task_id, self.type, self.active])
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def matches(self, schedule: Mapping[str, Any], /) -> bool:
        spec = schedule.get("spec") or {}
        if self.task_id is not None and spec.get("taskId") != self.task_id:
            return False
        if self.type is not None and schedule_type(schedule) != self.type:
            return False
        return self.active is None or bool(spec.get("active", True)) == self.active
