"""One run: `/runs/{run_id}`, and `/runs/{run_id}/live`, the parts of it that change.

The page shows the run as `GET /api/v1/runs/{id}` does (`run_views.run_view`), and around
it: the reason of its status and its conditions, its progress (`metadata.progress`), its
timeline (`run_timeline`), every attempt, the log of one (`?attempt=N`, read through
`GET /api/v1/runs/{id}/logs`' own function), its parent and children (`GET /api/v1/runs?
parentRunId=`), its Kubernetes Events, and the kubectl command that shows it. All of it is
rendered on the server; `static/run.js` keeps it live: on each change the one-run event
stream (`GET /api/v1/runs/{id}/events`) reports, it fetches `/runs/{id}/live` and swaps the
parts in (`[data-live-part]`), follows the log of a running attempt, and sends the actions
(Cancel, Replay, Reschedule) to the JSON API with the session's CSRF token.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from podtask_api.dashboard import run_display
from podtask_api.dashboard.pages import TEMPLATES, PageProblem, PageSessionDep, render
from podtask_api.dashboard.run_timeline import timeline
from podtask_api.errors import ApiError
from podtask_api.lookups import read_run
from podtask_api.routes import runs as runs_api
from podtask_api.routes.run_filters import RunQuery
from podtask_api.run_listing import RunFilters
from podtask_api.run_views import run_view
from podtask_api.services import Services, ServicesDep

router = APIRouter(include_in_schema=False)
run_display.install(TEMPLATES.env)

# Children shown on the page; the rest are a link to the runs list filtered by parent.
CHILDREN_SHOWN = 25


async def _children(svc: Services, run_id: str) -> dict[str, Any]:
    filters = RunFilters(parent_run_id=run_id)
    return await runs_api.list_runs(
        svc=svc, query=RunQuery(filters), limit=CHILDREN_SHOWN, cursor=None
    )


async def _live_context(svc: Services, run_id: str) -> dict[str, Any]:
    """What the parts of the page that change show: the run and everything about it."""
    try:
        raw = await read_run(svc, run_id)
    except ApiError as exc:
        if exc.status == 404:
            raise PageProblem(404, "Run not found", exc.message) from None
        raise PageProblem(exc.status, "The run cannot be read", exc.message) from None
    run = run_view(raw)
    now = datetime.now(UTC)
    try:
        children, events = await asyncio.gather(
            _children(svc, run_id), runs_api.kubernetes_events_of(svc, raw)
        )
    except ApiError as exc:
        raise PageProblem(exc.status, "The run cannot be read", exc.message) from None
    return {
        "run": run,
        "now": now,
        "final": run_display.is_final(run["status"]),
        "reason": run_display.status_reason(run),
        "progress": run_display.progress_of(run["metadata"]),
        "delay_until": (raw.get("spec") or {}).get("delayUntil"),
        "timeline": timeline(run, now),
        "children": children["data"],
        "more_children": children["nextCursor"] is not None,
        "events": events,
        "run_duration_ms": run_display.run_duration_ms,
        "attempt_duration_ms": run_display.attempt_duration_ms,
    }


async def _log(svc: Services, run: dict[str, Any], attempt: int | None) -> dict[str, Any]:
    """The log of `attempt` (the latest by default) as the page first shows it."""
    numbers = [int(a["number"]) for a in run["attempts"]]
    if run["attempt"] and run["attempt"] not in numbers:
        numbers.append(int(run["attempt"]))  # started, not recorded yet
    if not numbers:
        return {"attempts": [], "attempt": None, "text": None, "note": "No attempt has started."}
    chosen = attempt if attempt in numbers else numbers[-1]
    try:
        response = await runs_api.run_logs(run["id"], svc, attempt=chosen, follow=False)
    except ApiError as exc:
        return {"attempts": numbers, "attempt": chosen, "text": None, "note": exc.message}
    text = bytes(response.body).decode("utf-8", errors="replace")
    return {"attempts": numbers, "attempt": chosen, "text": text, "note": ""}


@router.get("/runs/{run_id}")
async def run_page(
    run_id: str,
    request: Request,
    session: PageSessionDep,
    svc: ServicesDep,
    attempt: str | None = None,
) -> HTMLResponse:
    context = await _live_context(svc, run_id)
    run = context["run"]
    # `?attempt=N` picks the log shown (the latest otherwise, also for a value that is none).
    asked = int(attempt) if attempt and attempt.isdigit() else None
    context["log"] = await _log(svc, run, asked)
    context["kubectl"] = run_display.kubectl_command(run["id"], svc.settings.namespace)
    context["page_data"] = {
        "id": run["id"],
        "status": run["status"],
        "attempt": run["attempt"],
        "attempts": run["attempts"],
        "logAttempt": context["log"]["attempt"],
    }
    return render(request, "run.html", context)


@router.get("/runs/{run_id}/live")
async def run_live(
    run_id: str, request: Request, session: PageSessionDep, svc: ServicesDep
) -> HTMLResponse:
    """The parts of the run page that change, for `run.js` to swap in."""
    return render(request, "_run_live.html", await _live_context(svc, run_id))
