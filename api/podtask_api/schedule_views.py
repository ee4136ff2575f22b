"""What the API (and the dashboard's Schedules page) shows of a `TaskSchedule`.

`schedule_view` is a pure function of the object as the cluster returns it and of the
current time: the schedule's fields, its last tick as the operator wrote it, and its next
ticks as its cron gives them (none while it is inactive). Its shape is the model
`ScheduleView` in `api_models`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from podtask._contract.resources import TaskScheduleSpec, TaskScheduleStatus
from podtask._contract.schedules import CronSchedule, format_tick, upcoming

log = logging.getLogger("podtask_api")


def _instant(value: datetime | None) -> str | None:
    # As the scheduled payload writes its ticks: `YYYY-MM-DDTHH:MM:SSZ`.
    return None if value is None else format_tick(value)


# What the contract's rules say of a cron or a zone they refuse.
_RULE_ERRORS = frozenset({"invalid_cron", "invalid_timezone"})


def _read_spec(raw: Mapping[str, Any]) -> tuple[TaskScheduleSpec, bool]:
    """The spec, and whether its cron and zone are ones the rules take. One written around
    the API (kubectl) may hold others: it shows as it is, without ticks (the operator says
    why in its conditions)."""
    try:
        return TaskScheduleSpec.model_validate(raw), True
    except ValidationError as exc:
        if any(error["type"] not in _RULE_ERRORS for error in exc.errors()):
            raise
    valid = TaskScheduleSpec.model_validate({**raw, "cron": "@daily", "timezone": "UTC"})
    as_stored = {"cron": raw.get("cron"), "timezone": raw.get("timezone", valid.timezone)}
    return valid.model_copy(update=as_stored), False


def next_ticks(spec: TaskScheduleSpec, now: datetime) -> list[datetime]:
    """The schedule's next ticks after `now`; none while inactive."""
    return upcoming(CronSchedule(spec.cron, spec.timezone), now) if spec.active else []


def schedule_view(schedule: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The schedule as `GET /api/v1/schedules/{id}` shows it; `ValueError` (a pydantic
    `ValidationError`) for an object that is not a TaskSchedule."""
    metadata = schedule.get("metadata") or {}
    spec, valid = _read_spec(schedule.get("spec") or {})
    try:
        status = TaskScheduleStatus.model_validate(schedule.get("status") or {})
    except ValidationError:
        status = TaskScheduleStatus()  # the operator's part: the spec still shows
    ticks = next_ticks(spec, now) if valid else []
    return {
        "id": metadata.get("name"),
        "task": spec.task_id,
        "type": spec.type,
        "active": spec.active,
        "cron": spec.cron,
        "timezone": spec.timezone,
        "externalId": spec.external_id,
        "deduplicationKey": spec.deduplication_key,
        "nextRun": _instant(ticks[0]) if ticks else None,
        "lastRun": _instant(status.last_timestamp),
        "lastRunId": status.last_run_id,
        "upcoming": [_instant(tick) for tick in ticks],
        "createdAt": metadata.get("creationTimestamp"),
        "conditions": [condition.to_wire() for condition in status.conditions],
    }


def schedule_views(schedules: Iterable[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The views of `schedules`, leaving out (with a warning) an object that is not one."""
    views = []
    for schedule in schedules:
        try:
            views.append(schedule_view(schedule, now))
        except ValidationError:
            name = (schedule.get("metadata") or {}).get("name")
            log.warning("the TaskSchedule object %r is malformed; it is left out", name)
    return views
