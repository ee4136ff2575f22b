"""The runs list's URL: its filters, page size and place, read from the query and written
back into links. Pure.

The page takes the same names as `GET /api/v1/runs` (`status` (repeated), `task`, `tag`,
`queue`, `createdFrom`, `createdTo`, `isTest`, `parentRunId`, `scheduleId`, `limit`,
`cursor`), so that its filters are the API's, and its live stream
(`GET /api/v1/runs/events`) takes them as they are. `prev` (repeated) is the stack of the
cursors of the pages before this one (an empty one is the first page): Previous pops it. A
value the API would refuse is left out of the filters and said next to its field, rather
than failing the page.

The time range is read as the API reads it: a time without a zone is UTC (the form says
so; `datetime-local` fields send none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from podtask._contract.kube_names import is_label_value
from podtask_api.dashboard.run_display import STATUS_ORDER
from podtask_api.run_listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, RunFilters

PAGE_SIZES = (10, 25, 50, 100)
# Pages remembered for Previous, at most: past it the oldest are forgotten (the first page
# stays one click away).
MAX_PREVIOUS = 30
MAX_CURSOR = 4096


@dataclass(frozen=True)
class RunsQuery:
    """What the runs page was asked for, as written in its URL."""

    statuses: tuple[str, ...] = ()
    task: str = ""
    tag: str = ""
    queue: str = ""
    created_from: str = ""
    created_to: str = ""
    test_only: bool = False
    parent_run_id: str = ""
    schedule_id: str = ""
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str = ""
    previous: tuple[str, ...] = ()
    # field → what is wrong with its value (that filter is not applied).
    problems: Mapping[str, str] = field(default_factory=dict)

    def filter_params(self) -> list[tuple[str, str]]:
        """The filters, as `GET /api/v1/runs` and its stream take them (the valid ones)."""
        params = [("status", s) for s in self.statuses]
        for name, value in (
            ("task", self.task),
            ("tag", self.tag),
            ("queue", self.queue),
            ("createdFrom", self.created_from),
            ("createdTo", self.created_to),
            ("parentRunId", self.parent_run_id),
            ("scheduleId", self.schedule_id),
        ):
            if value and name not in self.problems:
                params.append((name, value))
        if self.test_only:
            params.append(("isTest", "true"))
        return params

    @property
    def filtered(self) -> bool:
        return bool(self.filter_params())

    def url(self, **changes: object) -> str:
        """`/runs?…` for this query with `changes` (field names of `RunsQuery`)."""
        query = replace(self, **changes)  # type: ignore[arg-type]
        params = query.filter_params()
        if query.limit != DEFAULT_PAGE_SIZE:
            params.append(("limit", str(query.limit)))
        if query.cursor:
            params.append(("cursor", query.cursor))
            params += [("prev", cursor) for cursor in query.previous]
        encoded = urlencode(params)
        return "/runs" + (f"?{encoded}" if encoded else "")

    def next_url(self, next_cursor: str) -> str:
        stack = (*self.previous, self.cursor)[-MAX_PREVIOUS:]
        return self.url(cursor=next_cursor, previous=stack)

    def previous_url(self) -> str | None:
        if not self.cursor:
            return None
        if not self.previous:
            return self.url(cursor="", previous=())
        return self.url(cursor=self.previous[-1], previous=self.previous[:-1])

    def first_url(self) -> str:
        return self.url(cursor="", previous=())

    def stream_path(self) -> str:
        """The live stream of the runs these filters show."""
        encoded = urlencode(self.filter_params())
        return "/api/v1/runs/events" + (f"?{encoded}" if encoded else "")

    def run_filters(self) -> RunFilters:
        """The filters, for `run_listing` (the valid ones)."""
        valid = dict(self.filter_params())
        return RunFilters(
            statuses=frozenset(self.statuses),
            task_id=valid.get("task"),
            tags=frozenset([valid["tag"]]) if "tag" in valid else frozenset(),
            queue=valid.get("queue"),
            created_from=_utc(valid.get("createdFrom")),
            created_to=_utc(valid.get("createdTo")),
            is_test=True if self.test_only else None,
            parent_run_id=valid.get("parentRunId"),
            schedule_id=valid.get("scheduleId"),
        )


def _utc(text: str | None) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _time_problem(text: str) -> str | None:
    try:
        _utc(text)
    except ValueError:
        return f"{text!r} is not a date and time (like 2024-05-01T10:00)"
    return None


def _first(params: Mapping[str, Sequence[str]], name: str) -> str:
    values = params.get(name) or []
    return values[0].strip() if values else ""


def read_runs_query(params: Mapping[str, Sequence[str]]) -> RunsQuery:
    """The runs page's query from its URL's parameters (each name → its values)."""
    problems: dict[str, str] = {}
    statuses = []
    for status in params.get("status") or []:
        if status in STATUS_ORDER and status not in statuses:
            statuses.append(status)
        elif status and status not in STATUS_ORDER:
            problems["status"] = f"{status!r} is not a status"
    task, queue, tag = _first(params, "task"), _first(params, "queue"), _first(params, "tag")
    parent, schedule = _first(params, "parentRunId"), _first(params, "scheduleId")
    if task and not is_label_value(task):
        problems["task"] = f"{task!r} is not a task id"
    if parent and not is_label_value(parent):
        problems["parentRunId"] = f"{parent!r} is not a run id"
    if schedule and not is_label_value(schedule):
        problems["scheduleId"] = f"{schedule!r} is not a schedule id"
    if len(tag) > 128:
        problems["tag"] = "a tag is at most 128 characters"
    if len(queue) > 253:
        problems["queue"] = "a queue name is at most 253 characters"
    created_from, created_to = _first(params, "createdFrom"), _first(params, "createdTo")
    for name, text in (("createdFrom", created_from), ("createdTo", created_to)):
        if text and (problem := _time_problem(text)):
            problems[name] = problem
    limit_text = _first(params, "limit")
    limit = DEFAULT_PAGE_SIZE
    if limit_text:
        if limit_text.isdigit() and 1 <= int(limit_text) <= MAX_PAGE_SIZE:
            limit = int(limit_text)
        else:
            problems["limit"] = f"the page size is a number from 1 to {MAX_PAGE_SIZE}"
    cursor = _first(params, "cursor")[:MAX_CURSOR]
    previous = tuple(p[:MAX_CURSOR] for p in params.get("prev") or [])[-MAX_PREVIOUS:]
    return RunsQuery(
        statuses=tuple(statuses),
        task=task,
        tag=tag,
        queue=queue,
        created_from=created_from,
        created_to=created_to,
        test_only=_first(params, "isTest").lower() == "true",
        parent_run_id=parent,
        schedule_id=schedule,
        limit=limit,
        cursor=cursor,
        previous=previous if cursor else (),
        problems=problems,
    )
