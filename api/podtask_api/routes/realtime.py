"""Runs as they change, as server-sent events: `GET /api/v1/runs/{id}/events` (one run, from
its current state to its end) and `GET /api/v1/runs/events` (every run that passes the
filters of `GET /api/v1/runs`).

Each change is `event: run`, its `data` the run as `GET /api/v1/runs/{id}` shows it (on one
line) and its `id` the run's resourceVersion; a run deleted is `event: deleted` with
`data: {"id": ...}`. The stream of one run ends with `event: end` after a final status. A
comment (`: keepalive`) comes every 15 seconds. A client that reconnects with the header
`Last-Event-ID` gets the changes it missed, as far as the feed still has them, and the
stream of one run sends the run's current state again (unless the client had it).

Every stream is fed by the process's one watch of TaskRuns (`run_feed`); what each sends is
`run_events`' rules.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from podtask._contract.kube_names import is_object_name
from podtask_api.api_models import RunView
from podtask_api.batch_visibility import is_visible
from podtask_api.errors import ApiError, error_responses
from podtask_api.lookups import read_run, run_not_found
from podtask_api.routes.access import PUBLIC_ROUTE_ERRORS, any_key
from podtask_api.routes.run_filters import RunQueryDep
from podtask_api.run_events import KEEPALIVE, OneRun, RunChange, RunFollow, RunList, run_frame
from podtask_api.run_feed import Subscription
from podtask_api.run_views import run_view
from podtask_api.services import Services, ServicesDep

log = logging.getLogger("podtask_api")

# Included before the routes of `runs`: `/runs/events` is not a run named "events".
router = APIRouter(prefix="/api/v1", tags=["runs"], responses=PUBLIC_ROUTE_ERRORS)

EVENT_STREAM = "text/event-stream"
# No caching, and no buffering by a proxy (nginx) that would hold events back.
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=64,
        description="The `id` of the last event received, when reconnecting: the changes "
        "since are sent first, as far as the API still has them.",
    ),
]


def _documented(what: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": what,
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        }
    }


def shown(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run exactly as `GET /api/v1/runs/{id}` answers it (through its model)."""
    view = RunView.model_validate(run_view(dict(run)))
    return view.model_dump(mode="json", by_alias=True)


class EventStream(StreamingResponse):
    """A stream of events that leaves its subscription when it ends, however it ends: its
    client gone (Starlette cancels the stream at once), the stream over, or never started."""

    def __init__(self, frames: AsyncIterator[bytes], subscription: Subscription) -> None:
        super().__init__(frames, media_type=EVENT_STREAM, headers=_STREAM_HEADERS)
        self.subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.subscription.close()


async def _changes(subscription: Subscription, keepalive: float) -> AsyncIterator[RunChange | None]:
    """The subscription's changes, None whenever `keepalive` seconds pass without one."""
    while not subscription.ended:
        yield await subscription.next(keepalive)


@router.get(
    "/runs/events",
    response_class=Response,
    responses={
        **_documented("Every change of the runs that pass the filters, as they happen."),
        **error_responses(503),
    },
    dependencies=[Depends(any_key)],
)
async def runs_events(
    svc: ServicesDep, query: RunQueryDep, last_event_id: LastEventId = None
) -> Response:
    """The runs that pass the filters (those of `GET /api/v1/runs`), as they change: an
    `event: run` for each change, `event: deleted` when a run is deleted. A run that leaves
    the statuses asked for is sent once more, with its new status."""
    interest = RunList(query.filters, query.matches_none)
    subscription = await svc.run_feed.subscribe(interest, last_event_id)
    return EventStream(_list_frames(svc, subscription), subscription)


async def _list_frames(svc: Services, subscription: Subscription) -> AsyncIterator[bytes]:
    async for change in _changes(subscription, svc.settings.events_keepalive_seconds):
        if change is None:
            yield KEEPALIVE
        elif await _visible(svc, change):
            frame = _frame(change)
            if frame is not None:
                yield frame


async def _visible(svc: Services, change: RunChange) -> bool:
    """Whether users may see the run: not one of a batch not committed yet."""
    try:
        return await is_visible(svc, change.run)
    except ApiError as exc:
        log.warning("whether run %r is visible is unknown (%s); not sent", change.name, exc)
        return False


def _frame(change: RunChange) -> bytes | None:
    try:
        return run_frame(change, shown)
    except ValueError:
        log.warning("the TaskRun object %r is malformed; its change is not sent", change.name)
        return None


@router.get(
    "/runs/{run_id}/events",
    response_class=Response,
    responses={
        **_documented("The run's current state, then each change, then `end`."),
        **error_responses(404),
    },
    dependencies=[Depends(any_key)],
)
async def run_events(run_id: str, svc: ServicesDep, last_event_id: LastEventId = None) -> Response:
    """The run as it changes: its current state first, an `event: run` for each change after
    (each state once), and `event: end` after a final status (or `event: deleted` and `end`
    when the run is deleted); then the stream closes."""
    if not is_object_name(run_id):
        raise run_not_found(run_id)
    subscription = await svc.run_feed.subscribe(OneRun(run_id), last_event_id)
    try:
        run = await read_run(svc, run_id)
        follow = RunFollow(shown, resumed_from=last_event_id)
        # A client that resumes gets what it missed, in order, before the current state.
        missed = subscription.take_before(_version(run)) if last_event_id else []
        first = [f for change in missed for f in follow.change(change)]
        if not follow.ended:
            first += follow.current(run)
    except BaseException:
        subscription.close()
        raise
    return EventStream(_run_frames(svc, subscription, follow, first), subscription)


def _version(run: Mapping[str, Any]) -> str:
    return str((run.get("metadata") or {}).get("resourceVersion") or "")


async def _run_frames(
    svc: Services, subscription: Subscription, follow: RunFollow, first: list[bytes]
) -> AsyncIterator[bytes]:
    for frame in first:
        yield frame
    if follow.ended:
        return
    async for change in _changes(subscription, svc.settings.events_keepalive_seconds):
        if change is None:
            yield KEEPALIVE
            continue
        try:
            frames = follow.change(change)
        except ValueError:
            log.warning("the TaskRun object %r is malformed; its change is not sent", change.name)
            continue
        for frame in frames:
            yield frame
        if follow.ended:
            return
