"""The catalog's pages: `/tasks`, the deployed tasks with their runs of the last 24 hours
by status, and `/queues`, each queue's limit, pause and counts, with its controls.

Both render on the server from what the JSON API shows (`catalog_views`); the queues'
controls (`static/queues.js`) call the API's queue endpoints (`POST .../pause`,
`.../resume`, `PUT .../concurrency`) and refresh the table every few seconds. The counts
of the tasks' runs are `task_activity.tally_runs`', which reads only the runs of the window.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from podtask._contract.resources import PENDING_STATUS, RunPhase
from podtask_api.batch_visibility import visible_runs
from podtask_api.catalog_views import queue_view, task_views
from podtask_api.cluster import ClusterError
from podtask_api.dashboard.pages import PageProblem, PageSessionDep, render
from podtask_api.errors import ApiError
from podtask_api.run_listing import Chunk, Fetch
from podtask_api.services import Services, ServicesDep
from podtask_api.task_activity import tally_runs

router = APIRouter(include_in_schema=False)

TALLY_WINDOW = timedelta(hours=24)
# The order the Tasks page shows statuses in: the life of a run, then its ends.
STATUS_ORDER = (PENDING_STATUS, *(str(phase) for phase in RunPhase))
T = TypeVar("T")


async def cluster_read(what: str, read: Callable[[], Awaitable[T]]) -> T:
    """`read()`, or a page that says the cluster could not be read (never a JSON error)."""
    try:
        return await read()
    except ApiError as exc:
        raise PageProblem(exc.status, f"The {what} cannot be read", exc.message) from None
    except ClusterError as exc:
        raise PageProblem(503, f"The {what} cannot be read", str(exc)) from None


def run_chunks(svc: Services) -> Fetch:
    """Reads TaskRuns a chunk at a time, in name order, without the runs of batches not
    committed yet (which do not exist for users: `batch_visibility`)."""

    async def fetch(selector: str | None, size: int, token: str | None) -> Chunk:
        listed = await svc.call(svc.cluster.list_runs, selector, size, token)
        items = await visible_runs(svc, listed.get("items") or [])
        return Chunk(items, (listed.get("metadata") or {}).get("continue"))

    return fetch


async def deployed_tasks(svc: Services) -> list[dict[str, Any]]:
    """The deployed tasks as `GET /api/v1/tasks` shows them, by id."""
    views = task_views(await svc.call(svc.cluster.list_tasks))
    return sorted(views, key=lambda view: str(view["id"]))


def retry_summary(retry: dict[str, Any]) -> str:
    """A task's retry policy in a few words: `3 attempts, backoff 1 s to 60 s, factor 2`."""
    attempts = retry["maxAttempts"]
    if attempts == 1:
        return "no retries (1 attempt)"
    words = (
        f"{attempts} attempts, backoff {retry['minTimeoutMs'] / 1000:g} s to "
        f"{retry['maxTimeoutMs'] / 1000:g} s, factor {retry['factor']:g}"
    )
    if not retry["randomize"]:
        words += ", not randomized"
    if retry.get("outOfMemoryMachine"):
        words += f"; out of memory: retry on {retry['outOfMemoryMachine']}"
    return words


def status_counts(counts: dict[str, int]) -> list[tuple[str, int]]:
    """(status, count) for each status with runs, in `STATUS_ORDER` (unknown ones last)."""
    known = [(status, counts[status]) for status in STATUS_ORDER if counts.get(status)]
    others = sorted((status, n) for status, n in counts.items() if status not in STATUS_ORDER)
    return known + [(status, n) for status, n in others if n]


def limit_note(queue: dict[str, Any], declared: int | None) -> str:
    """Where a queue's limit comes from, in words (`static/queues.js` says the same):
    "set here" (a limit of its own, unlike its tasks' declaration), "declared", "default"."""
    own = queue.get("concurrencyLimit")
    if own is not None and own != declared:
        return "set here"
    return "default" if own is None and declared is None else "declared"


@router.get("/tasks")
async def tasks_page(request: Request, session: PageSessionDep, svc: ServicesDep) -> HTMLResponse:
    now = datetime.now(UTC)
    since = now - TALLY_WINDOW
    views = await cluster_read("tasks", lambda: deployed_tasks(svc))
    tallies = await cluster_read("runs", lambda: tally_runs(run_chunks(svc), since))
    rows = []
    for view in views:
        counts = tallies.of(str(view["id"]))
        rows.append(
            {
                "task": view,
                "retry": retry_summary(view["retry"]),
                "counts": status_counts(dict(counts)),
                "total": sum(counts.values()),
            }
        )
    context = {
        "rows": rows,
        "since": since.isoformat().replace("+00:00", "Z"),
        "complete": tallies.complete,
        "examined": tallies.examined,
    }
    return render(request, "tasks.html", context)


@router.get("/queues")
async def queues_page(request: Request, session: PageSessionDep, svc: ServicesDep) -> HTMLResponse:
    queues = await cluster_read("queues", lambda: svc.call(svc.cluster.list_queues))
    views = sorted((queue_view(queue) for queue in queues), key=lambda q: str(q["name"]))
    tasks = await cluster_read("tasks", lambda: deployed_tasks(svc))
    users: dict[str, list[str]] = {}
    declared: dict[str, int | None] = {}
    for task in tasks:
        name = str(task["queue"]["name"])
        users.setdefault(name, []).append(str(task["id"]))
        # The tasks of a queue declare one limit (the manifest's rule).
        declared[name] = task["queue"]["concurrencyLimit"]
    notes = {str(q["name"]): limit_note(q, declared.get(str(q["name"]))) for q in views}
    context = {
        "queues": views,
        "users": users,
        "declared_limits": declared,
        "limit_notes": notes,
    }
    return render(request, "queues.html", context)
