"""The Test page, `/test` (`/test?task=ID`): trigger a test run of any deployed task from the
browser, as Trigger.dev's Test page does.

The server renders the chooser of tasks, the chosen task's configuration and payload JSON
schema, its recent payloads (from its newest runs: `task_activity.recent_payloads`) and the
machines on offer, and hands them to the page's script in `<script type="application/json"
id="test-data">`. The script (`static/test_page.js`, with `static/json_schema.js`) keeps the
payload editor checked as one types (JSON syntax with line and column, then the task's
schema, both before anything is sent), fills in an example from the schema, keeps named
templates in the browser's localStorage, and triggers the run through the JSON API
(`POST /api/v1/tasks/{id}/trigger`, option `isTest: true`), then goes to the run's page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from podtask._contract.machines import PRESETS
from podtask._contract.resources import parse_timestamp
from podtask._contract.wire import LABEL_TASK
from podtask_api.dashboard.catalog_pages import cluster_read, deployed_tasks, run_chunks
from podtask_api.dashboard.pages import PageSessionDep, render
from podtask_api.services import Services, ServicesDep
from podtask_api.task_activity import RECENT_RUNS_READ, RecentPayload, recent_payloads

router = APIRouter(include_in_schema=False)

_LONG_AGO = datetime.min.replace(tzinfo=UTC)


async def task_recent_payloads(svc: Services, task_id: str) -> list[RecentPayload]:
    """The recent distinct payloads of the task's newest runs (one read of the cluster)."""
    chunk = await run_chunks(svc)(f"{LABEL_TASK}={task_id}", RECENT_RUNS_READ, None)
    newest_first = sorted(
        chunk.items,
        key=lambda run: (
            parse_timestamp((run.get("metadata") or {}).get("creationTimestamp")) or _LONG_AGO
        ),
        reverse=True,
    )
    return recent_payloads(newest_first)


def machines() -> list[dict[str, Any]]:
    return [
        {"name": preset.name, "cpu": preset.cpu, "memoryGb": preset.memory_gb}
        for preset in PRESETS.values()
    ]


@router.get("/test")
async def test_page(
    request: Request, session: PageSessionDep, svc: ServicesDep, task: str | None = None
) -> HTMLResponse:
    tasks = await cluster_read("tasks", lambda: deployed_tasks(svc))
    by_id = {str(view["id"]): view for view in tasks}
    chosen = by_id.get(task) if task else (tasks[0] if tasks else None)
    recent: list[RecentPayload] = []
    if chosen is not None:
        chosen_id = str(chosen["id"])
        recent = await cluster_read("runs", lambda: task_recent_payloads(svc, chosen_id))
    data = {
        "task": chosen,
        "recent": [
            {"runId": item.run_id, "createdAt": item.created_at, "payload": item.payload}
            for item in recent
        ],
        "machines": machines(),
    }
    context = {
        "tasks": tasks,
        "chosen": chosen,
        "asked": task,
        "unknown": task is not None and chosen is None,
        "recent": recent,
        "machines": data["machines"],
        "data": data,
    }
    return render(request, "test.html", context)
