"""Schedules: create (or, by deduplication key, update), list, read, change, activate,
deactivate and delete them; and the timezones they may use.

Each route declares who may call it (`access`). What a request asks for and the patches it
makes are `schedule_requests`', what a schedule shows `schedule_views`'; the operator ticks
them. A DECLARATIVE schedule (`@task(schedule=...)`) may be activated and deactivated here,
not changed nor deleted: its task's declaration owns it (409 `declarative_schedule`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import ValidationError

from podtask._contract.kube_names import LABEL_VALUE_PATTERN, is_object_name
from podtask._contract.resources import ScheduleType
from podtask._contract.schedules import imperative_schedule_name, known_timezones
from podtask_api.api_models import SchedulePage, ScheduleView, TimezoneList
from podtask_api.cluster import ObjectAlreadyExists, ObjectNotFound
from podtask_api.errors import ApiError, error_responses, malformed_object
from podtask_api.lookups import find_task
from podtask_api.routes.access import PUBLIC_ROUTE_ERRORS, Access, any_key, write_key
from podtask_api.routes.run_filters import CursorQuery
from podtask_api.run_listing import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Chunk,
    decode_cursor,
    list_page,
    read_chunk,
)
from podtask_api.schedule_requests import (
    NewSchedule,
    ScheduleFilters,
    ScheduleRequest,
    ScheduleUpdate,
    activity_patch,
    declarative_conflict,
    plan_creation,
    schedule_not_found,
    unknown_task,
    update_patch,
)
from podtask_api.schedule_views import schedule_view, schedule_views
from podtask_api.services import Services, ServicesDep

router = APIRouter(prefix="/api/v1", tags=["schedules"], responses=PUBLIC_ROUTE_ERRORS)

ScheduleId = Annotated[str, Path(description="The schedule's id.", max_length=253)]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def _view(schedule: dict[str, Any]) -> dict[str, Any]:
    """The schedule's view now; a 502 naming the bad fields for an object the API cannot
    read (written around it)."""
    try:
        return schedule_view(schedule, datetime.now(UTC))
    except ValidationError as exc:
        name = (schedule.get("metadata") or {}).get("name")
        message = f"the TaskSchedule object {name!r} in the cluster is malformed"
        raise malformed_object("invalid_schedule", message, exc) from None


async def read_schedule(svc: Services, schedule_id: str) -> dict[str, Any]:
    """The TaskSchedule `schedule_id`; a 404 when there is none."""
    if not is_object_name(schedule_id):
        raise schedule_not_found(schedule_id)
    try:
        return await svc.call(svc.cluster.get_schedule, schedule_id)
    except ObjectNotFound:
        raise schedule_not_found(schedule_id) from None


async def _patch(svc: Services, schedule_id: str, patch: dict[str, Any]) -> dict[str, Any]:
    try:
        return await svc.call(svc.cluster.merge_patch_schedule, schedule_id, patch)
    except ObjectNotFound:
        raise schedule_not_found(schedule_id) from None


async def _require_task(svc: Services, task_id: str) -> None:
    if await find_task(svc, task_id) is None:
        raise unknown_task(task_id, svc.settings.namespace)


# Random names are 82 bits: meeting an existing one twice in a row does not happen.
_NAME_TRIES = 2


async def _create_or_update(svc: Services, request: ScheduleRequest) -> tuple[dict[str, Any], bool]:
    """The schedule the request makes, and whether it was created (not found by its key)."""
    key = request.deduplication_key
    for _ in range(_NAME_TRIES):
        name = imperative_schedule_name(request.task, key)
        existing = None
        if key is not None:
            with contextlib.suppress(ObjectNotFound):
                existing = await svc.call(svc.cluster.get_schedule, name)
        step = plan_creation(request, name, existing)
        if not isinstance(step, NewSchedule):
            return await _patch(svc, step.name, step.patch), False
        try:
            return await svc.call(svc.cluster.create_schedule, step.body), True
        except ObjectAlreadyExists:
            # With a key: another create with it got there first, and this one updates it.
            continue
    raise ApiError(409, "schedule_conflict", "the schedule was created meanwhile; try again")


@router.post(
    "/schedules",
    status_code=201,
    response_model=ScheduleView,
    responses={
        200: {"model": ScheduleView, "description": "Its deduplication key found it: updated."},
        **error_responses(400, 409, 413),
    },
    dependencies=[Depends(write_key)],
)
async def create_schedule(
    request: ScheduleRequest, svc: ServicesDep, response: Response
) -> dict[str, Any]:
    """Create a schedule of a deployed task: at each time its cron gives (in its timezone),
    the operator triggers a run of the task, whose payload says which tick it is.

    With a `deduplicationKey` that a schedule of the task already has, that schedule is
    updated to what the body says instead (200): creating it again is safe. A bad cron or
    timezone, or a task not deployed, is a 422 naming the field.
    """
    await _require_task(svc, request.task)
    schedule, created = await _create_or_update(svc, request)
    if not created:
        response.status_code = 200
    return _view(schedule)


TypeFilter = Annotated[
    ScheduleType | None,
    Query(description="Only schedules of this type (`DECLARATIVE` or `IMPERATIVE`)."),
]


@router.get(
    "/schedules",
    response_model=SchedulePage,
    responses=error_responses(410),
    dependencies=[Depends(any_key)],
)
async def list_schedules(
    svc: ServicesDep,
    task: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=63,
            pattern=LABEL_VALUE_PATTERN,
            description="Only schedules of this task (its id).",
        ),
    ] = None,
    type: TypeFilter = None,
    active: Annotated[
        bool | None, Query(description="true: only active ones; false: only inactive ones.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="Schedules per page at most.")
    ] = DEFAULT_PAGE_SIZE,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    """Schedules, in id order, a page at a time (as `GET /api/v1/runs`): follow
    `nextCursor` until it is null to see every one exactly once."""
    filters = ScheduleFilters(
        task_id=task, type=None if type is None else type.value, active=active
    )
    start = decode_cursor(cursor, filters) if cursor is not None else None

    async def fetch(selector: str | None, size: int, token: str | None) -> Chunk:
        return await svc.call(read_chunk, svc.cluster.list_schedules, selector, size, token)

    page = await list_page(fetch, filters, limit, start)
    next_cursor = page.next_cursor.encode() if page.next_cursor else None
    return {"data": schedule_views(page.runs, datetime.now(UTC)), "nextCursor": next_cursor}


def _on_one_schedule(
    method: str, path: str, access: Access, *errors: int
) -> Callable[[Endpoint], Endpoint]:
    """The route of an endpoint on the schedule `{schedule_id}`: it answers the schedule's
    view, or a 404 when there is no such schedule."""
    return router.api_route(
        path,
        methods=[method],
        response_model=ScheduleView,
        responses=error_responses(*errors, 404),
        dependencies=[Depends(access)],
    )


@_on_one_schedule("GET", "/schedules/{schedule_id}", any_key)
async def get_schedule(schedule_id: ScheduleId, svc: ServicesDep) -> dict[str, Any]:
    return _view(await read_schedule(svc, schedule_id))


@_on_one_schedule("PUT", "/schedules/{schedule_id}", write_key, 400, 409, 413)
async def update_schedule(
    schedule_id: ScheduleId, update: ScheduleUpdate, svc: ServicesDep
) -> dict[str, Any]:
    """Change an IMPERATIVE schedule: the fields given (`task`, `cron`, `timezone`,
    `externalId`); those left out keep their value. A DECLARATIVE one is a 409
    `declarative_schedule`: change it where its task declares it."""
    schedule = await read_schedule(svc, schedule_id)
    if (conflict := declarative_conflict(schedule)) is not None:
        raise conflict
    if update.task is not None:
        await _require_task(svc, update.task)
    return _view(await _patch(svc, schedule_id, update_patch(update)))


@_on_one_schedule("POST", "/schedules/{schedule_id}/activate", write_key)
async def activate_schedule(schedule_id: ScheduleId, svc: ServicesDep) -> dict[str, Any]:
    """Trigger the schedule's runs again, from its next tick on (ticks missed while it was
    inactive are not run)."""
    await read_schedule(svc, schedule_id)  # a 404 rather than a patch that creates nothing
    return _view(await _patch(svc, schedule_id, activity_patch(True)))


@_on_one_schedule("POST", "/schedules/{schedule_id}/deactivate", write_key)
async def deactivate_schedule(schedule_id: ScheduleId, svc: ServicesDep) -> dict[str, Any]:
    """Trigger no more runs of the schedule until it is activated; runs already triggered go
    on. A DECLARATIVE one stays deactivated across deploys."""
    await read_schedule(svc, schedule_id)
    return _view(await _patch(svc, schedule_id, activity_patch(False)))


@_on_one_schedule("DELETE", "/schedules/{schedule_id}", write_key, 409)
async def delete_schedule(schedule_id: ScheduleId, svc: ServicesDep) -> dict[str, Any]:
    """Delete an IMPERATIVE schedule; the answer is the schedule as it was. Its runs stay.
    A DECLARATIVE one is a 409 `declarative_schedule`: remove it from its task's
    declaration (or deactivate it)."""
    schedule = await read_schedule(svc, schedule_id)
    if (conflict := declarative_conflict(schedule)) is not None:
        raise conflict
    view = _view(schedule)
    uid = str((schedule.get("metadata") or {}).get("uid") or "")
    try:
        await svc.call(svc.cluster.delete_schedule, schedule_id, uid)
    except ObjectNotFound:
        raise schedule_not_found(schedule_id) from None
    except ObjectAlreadyExists:  # Kubernetes' 409: the uid precondition failed
        raise ApiError(
            409, "schedule_conflict", f"schedule {schedule_id!r} was replaced meanwhile; try again"
        ) from None
    return view


@router.get(
    "/timezones",
    response_model=TimezoneList,
    dependencies=[Depends(any_key)],
)
async def timezones() -> dict[str, Any]:
    """The IANA zones a schedule's `timezone` may be, sorted."""
    return {"timezones": list(known_timezones())}
