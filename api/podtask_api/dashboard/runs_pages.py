"""The runs' list: `/runs`, newest first, filtered and paged as `GET /api/v1/runs` is.

The page reads its runs through that endpoint's own function (`routes.runs.list_runs`,
called in the process: the same filters, cursor and chunked reading) and renders them on the
server, so the list reads without JavaScript; its filters are a GET form whose values stay
in the URL (`runs_query`). `static/runs.js` then keeps the rows current from the runs'
event stream with the same filters (`GET /api/v1/runs/events`): rows change in place, and
on the first page new runs appear at the top.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from podtask_api.dashboard import run_display
from podtask_api.dashboard.pages import (
    TEMPLATES,
    PageProblem,
    PageSessionDep,
    list_page,
    render,
)
from podtask_api.dashboard.runs_query import PAGE_SIZES, RunsQuery, read_runs_query
from podtask_api.errors import ApiError
from podtask_api.routes import runs as runs_api
from podtask_api.routes import tasks as tasks_api
from podtask_api.routes.run_filters import RunQuery
from podtask_api.services import Services, ServicesDep

router = APIRouter(include_in_schema=False)
run_display.install(TEMPLATES.env)


async def _choices(svc: Services, query: RunsQuery) -> tuple[list[str], list[str]]:
    """The task ids and queue names the filters offer (the asked ones among them)."""
    tasks, queues = await asyncio.gather(tasks_api.list_tasks(svc), tasks_api.list_queues(svc))
    task_ids = {str(t["id"]) for t in tasks["data"] if t.get("id")}
    queue_names = {str(q["name"]) for q in queues["data"] if q.get("name")}
    task_ids |= {query.task} if query.task else set()
    queue_names |= {query.queue} if query.queue else set()
    return sorted(task_ids), sorted(queue_names)


async def _page(svc: Services, query: RunsQuery) -> tuple[list[dict[str, Any]], str | None, str]:
    """This page's runs, the next page's cursor, and what went wrong with the cursor."""
    return await list_page(
        lambda: runs_api.list_runs(
            svc=svc,
            query=RunQuery(query.run_filters()),
            limit=query.limit,
            cursor=query.cursor or None,
        ),
        query.cursor,
    )


@router.get("/runs")
async def runs_page(request: Request, session: PageSessionDep, svc: ServicesDep) -> HTMLResponse:
    query = read_runs_query(
        {name: request.query_params.getlist(name) for name in request.query_params}
    )
    try:
        (runs, next_cursor, cursor_problem), (task_ids, queue_names) = await asyncio.gather(
            _page(svc, query), _choices(svc, query)
        )
    except ApiError as exc:
        raise PageProblem(exc.status, "The runs cannot be listed", exc.message) from None
    context = {
        "query": query,
        "runs": runs,
        "now": datetime.now(UTC),
        "next_url": query.next_url(next_cursor) if next_cursor else None,
        "previous_url": query.previous_url(),
        "first_url": query.first_url() if query.cursor else None,
        "cursor_problem": cursor_problem,
        "statuses": run_display.STATUS_ORDER,
        "task_ids": task_ids,
        "queue_names": queue_names,
        "page_sizes": PAGE_SIZES,
        "run_duration_ms": run_display.run_duration_ms,
    }
    return render(request, "runs.html", context)
