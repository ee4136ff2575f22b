"""The Schedules pages: `/schedules`, every TaskSchedule of the namespace with its next
ticks and its newest runs, and `/schedules/{id}`, one schedule with all its upcoming ticks
and more of its runs.

Both render on the server what the JSON API shows, read through its routes' own functions
(in the process: the same filters, paging and views): the schedules as
`GET /api/v1/schedules` lists them (`schedule_views.schedule_view`), a page at a time, and
each one's runs as `GET /api/v1/runs?scheduleId=` lists them; `schedule_display` (pure)
writes them out. They read without JavaScript; `static/schedules.js` sends Activate and
Deactivate to the JSON API (`POST /api/v1/schedules/{id}/activate|deactivate`, with the
session's CSRF token: a read-only session has the buttons disabled, and the API refuses it
anyway), and keeps the cards current by reading the page again every few seconds.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from podtask._contract.kube_names import is_label_value
from podtask._contract.resources import ScheduleType
from podtask_api.dashboard import run_display
from podtask_api.dashboard.pages import (
    TEMPLATES,
    PageProblem,
    PageSessionDep,
    list_page,
    render,
)
from podtask_api.dashboard.schedule_display import (
    ACTIVE_LABELS,
    SCHEDULE_TYPES,
    ScheduleCard,
    SchedulesQuery,
    read_schedules_query,
    schedule_card,
    schedule_kubectl_command,
)
from podtask_api.errors import ApiError
from podtask_api.routes import runs as runs_api
from podtask_api.routes import schedules as schedules_api
from podtask_api.routes import tasks as tasks_api
from podtask_api.routes.run_filters import RunQuery
from podtask_api.run_listing import RunFilters
from podtask_api.services import Services, ServicesDep

router = APIRouter(include_in_schema=False)
run_display.install(TEMPLATES.env)

# Runs of each schedule on the list, and on a schedule's page; the rest are a link to the
# runs list filtered by schedule.
RUNS_ON_LIST = 5
RUNS_ON_PAGE = 25
# Upcoming ticks the list shows at once (the others behind "more"); a schedule's page
# shows all the API gives.
TICKS_ON_LIST = 3
# Schedules whose runs are read at once.
RUN_READS_AT_ONCE = 8
# Schedules a page of the list shows (each card reads its runs).
SCHEDULES_PER_PAGE = 20


async def _runs_of(svc: Services, schedule_id: str, limit: int) -> tuple[list[Any], bool]:
    """The newest `limit` runs the schedule triggered, and whether it has more."""
    if not is_label_value(schedule_id):
        return [], False  # a name no label can hold (made around the API): no run has it
    listed = await runs_api.list_runs(
        svc=svc, query=RunQuery(RunFilters(schedule_id=schedule_id)), limit=limit, cursor=None
    )
    return list(listed["data"]), listed["nextCursor"] is not None


async def _cards(
    svc: Services, schedules: list[dict[str, Any]], runs_each: int
) -> list[ScheduleCard]:
    gate = asyncio.Semaphore(RUN_READS_AT_ONCE)

    async def card(schedule: dict[str, Any]) -> ScheduleCard:
        async with gate:
            runs, more = await _runs_of(svc, str(schedule["id"]), runs_each)
        return schedule_card(schedule, runs, more_runs=more)

    return list(await asyncio.gather(*(card(schedule) for schedule in schedules)))


async def _page(
    svc: Services, query: SchedulesQuery
) -> tuple[list[dict[str, Any]], str | None, str]:
    """This page's schedules, the next page's cursor, and what went wrong with the cursor."""
    valid = dict(query.filter_params())
    return await list_page(
        lambda: schedules_api.list_schedules(
            svc=svc,
            task=valid.get("task"),
            type=ScheduleType(valid["type"]) if "type" in valid else None,
            active=valid["active"] == "true" if "active" in valid else None,
            limit=SCHEDULES_PER_PAGE,
            cursor=query.cursor or None,
        ),
        query.cursor,
    )


def _shown(request: Request, context: dict[str, Any], template: str) -> HTMLResponse:
    """`template` with what every card needs besides `context`."""
    values = {"now": datetime.now(UTC), "run_duration_ms": run_display.run_duration_ms}
    return render(request, template, {**values, **context})


@router.get("/schedules")
async def schedules_page(
    request: Request, session: PageSessionDep, svc: ServicesDep
) -> HTMLResponse:
    query = read_schedules_query(
        {name: request.query_params.getlist(name) for name in request.query_params}
    )
    try:
        (schedules, next_cursor, cursor_problem), tasks = await asyncio.gather(
            _page(svc, query), tasks_api.list_tasks(svc)
        )
        cards = await _cards(svc, schedules, RUNS_ON_LIST)
    except ApiError as exc:
        raise PageProblem(exc.status, "The schedules cannot be read", exc.message) from None
    task_ids = {str(task["id"]) for task in tasks["data"] if task.get("id")}
    context = {
        "query": query,
        "cards": cards,
        "cursor_problem": cursor_problem,
        "next_url": query.url(next_cursor) if next_cursor else None,
        "first_url": query.url() if query.cursor else None,
        "task_ids": sorted(task_ids | ({query.task} if query.task else set())),
        "types": SCHEDULE_TYPES,
        "active_labels": ACTIVE_LABELS,
        "ticks_shown": TICKS_ON_LIST,
        "detail": False,
    }
    return _shown(request, context, "schedules.html")


@router.get("/schedules/{schedule_id}")
async def schedule_page(
    schedule_id: str, request: Request, session: PageSessionDep, svc: ServicesDep
) -> HTMLResponse:
    try:
        schedule = await schedules_api.get_schedule(schedule_id, svc)
    except ApiError as exc:
        if exc.status == 404:
            raise PageProblem(404, "Schedule not found", exc.message) from None
        raise PageProblem(exc.status, "The schedule cannot be read", exc.message) from None
    try:
        [card] = await _cards(svc, [schedule], RUNS_ON_PAGE)
    except ApiError as exc:
        raise PageProblem(exc.status, "The schedule's runs cannot be read", exc.message) from None
    context = {
        "card": card,
        "detail": True,
        "ticks_shown": len(card.upcoming),
        "kubectl": schedule_kubectl_command(card.id, svc.settings.namespace),
    }
    return _shown(request, context, "schedule.html")
