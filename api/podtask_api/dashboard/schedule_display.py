"""How the Schedules pages show a schedule: its ticks in its own zone and in UTC, why it is
not ready, the link to its runs; and the list's URL: its filters (`/schedules?task=&type=
&active=`, the names `GET /api/v1/schedules` takes) and its place (`cursor`). Pure.

A schedule here is the JSON `GET /api/v1/schedules/{id}` answers (`schedule_views`); the
pages add to it only what they show (`ScheduleCard`), so that a page never says anything
else than the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from podtask._contract.kube_names import is_label_value
from podtask._contract.resources import ScheduleType, parse_timestamp
from podtask_api.dashboard.runs_query import MAX_CURSOR

SCHEDULE_TYPES = tuple(str(kind) for kind in ScheduleType)
# The `active` filter's values in the URL, and what the page calls them.
ACTIVE_LABELS = {"true": "Active", "false": "Inactive"}


@dataclass(frozen=True)
class ShownTick:
    """A tick as the pages write it: in the schedule's zone (with the weekday, which a cron
    like `0 9 * * 1-5` is about) and in UTC; `in_utc` when the zone is UTC itself, so once
    is enough."""

    iso: str
    local: str
    utc: str
    in_utc: bool


def _zone(name: str) -> tzinfo:
    """The zone named `name`; UTC for a name this machine does not know (the schedule then
    shows its ticks in UTC rather than failing the page: the API refuses such a zone, so
    only an object written by hand can have one)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def shown_tick(value: object, zone_name: str) -> ShownTick | None:
    """`value` (a wire timestamp) in the zone `zone_name` and in UTC; None when it is none."""
    when = parse_timestamp(value)
    if when is None:
        return None
    at = when.astimezone(UTC)
    local = at.astimezone(_zone(zone_name))
    abbreviation = local.strftime("%Z")
    return ShownTick(
        iso=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        local=local.strftime("%a %Y-%m-%d %H:%M ") + abbreviation,
        utc=at.strftime("%Y-%m-%d %H:%M UTC"),
        in_utc=local.utcoffset() == at.utcoffset() and abbreviation == "UTC",
    )


def not_ready(schedule: Mapping[str, Any]) -> dict[str, str] | None:
    """Why the schedule's ticks do not run, as the operator last said it (its `Ready`
    condition False: e.g. `TaskNotDeployed`); None when nothing is said against it."""
    for condition in schedule.get("conditions") or []:
        if (
            isinstance(condition, Mapping)
            and condition.get("type") == "Ready"
            and condition.get("status") == "False"
        ):
            return {
                "reason": str(condition.get("reason") or "NotReady"),
                "message": str(condition.get("message") or ""),
            }
    return None


def runs_url(schedule_id: str) -> str:
    """The runs list filtered to the runs the schedule triggered."""
    return "/runs?" + urlencode({"scheduleId": schedule_id})


@dataclass(frozen=True)
class ScheduleCard:
    """What the pages show of one schedule: its JSON, its ticks written out, its runs."""

    schedule: Mapping[str, Any]
    upcoming: tuple[ShownTick, ...]
    next_tick: ShownTick | None
    last_tick: ShownTick | None
    problem: dict[str, str] | None
    runs: Sequence[Mapping[str, Any]]
    more_runs: bool
    runs_url: str

    @property
    def id(self) -> str:
        return str(self.schedule["id"])


def schedule_card(
    schedule: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], *, more_runs: bool
) -> ScheduleCard:
    """The card of `schedule` (the API's JSON) with its newest `runs` (the runs list's
    summaries), `more_runs` when it has others."""
    zone = str(schedule.get("timezone") or "UTC")
    ticks = (shown_tick(value, zone) for value in schedule.get("upcoming") or [])
    return ScheduleCard(
        schedule=schedule,
        upcoming=tuple(tick for tick in ticks if tick is not None),
        next_tick=shown_tick(schedule.get("nextRun"), zone),
        last_tick=shown_tick(schedule.get("lastRun"), zone),
        problem=not_ready(schedule),
        runs=runs,
        more_runs=more_runs,
        runs_url=runs_url(str(schedule["id"])),
    )


def schedule_kubectl_command(schedule_id: str, namespace: str) -> str:
    """The kubectl command that shows the same schedule."""
    return f"kubectl get taskschedule {schedule_id} -n {namespace} -o yaml"


def _first(params: Mapping[str, Sequence[str]], name: str) -> str:
    values = params.get(name) or []
    return values[0].strip() if values else ""


@dataclass(frozen=True)
class SchedulesQuery:
    """The list's filters and place, as written in its URL; a filter value the API would
    refuse is left out and said next to its field (`problems`)."""

    task: str = ""
    type: str = ""
    active: str = ""
    cursor: str = ""
    problems: Mapping[str, str] = field(default_factory=dict)

    def filter_params(self) -> list[tuple[str, str]]:
        """The valid filters, as `GET /api/v1/schedules` takes them."""
        return [
            (name, value)
            for name, value in (("task", self.task), ("type", self.type), ("active", self.active))
            if value and name not in self.problems
        ]

    @property
    def filtered(self) -> bool:
        return bool(self.filter_params())

    def url(self, cursor: str = "") -> str:
        """`/schedules?…` with these filters, at `cursor` (none: the first page)."""
        params = self.filter_params() + ([("cursor", cursor)] if cursor else [])
        return "/schedules" + (f"?{urlencode(params)}" if params else "")


def read_schedules_query(params: Mapping[str, Sequence[str]]) -> SchedulesQuery:
    """The list's filters and place from its URL's parameters (each name → its values)."""
    problems: dict[str, str] = {}
    task, kind, active = _first(params, "task"), _first(params, "type"), _first(params, "active")
    if task and not is_label_value(task):
        problems["task"] = f"{task!r} is not a task id"
    kind = kind.upper()
    if kind and kind not in SCHEDULE_TYPES:
        problems["type"] = f"{kind!r} is not a type: {' or '.join(SCHEDULE_TYPES)}"
    active = active.lower()
    if active and active not in ACTIVE_LABELS:
        problems["active"] = f"{active!r} is not true or false"
    cursor = _first(params, "cursor")[:MAX_CURSOR]
    return SchedulesQuery(task=task, type=kind, active=active, cursor=cursor, problems=problems)
