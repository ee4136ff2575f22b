"""The filters of a request for runs, read from its query: one declaration for every route
that takes them (`GET /api/v1/runs` and the stream of its changes, `GET /api/v1/runs/events`),
so that both take the same parameters and refuse the same bad ones (422); and the cursor
of a list's page, runs' and schedules' alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

from podtask._contract.kube_names import LABEL_VALUE_PATTERN
from podtask._contract.trigger_request import IsoTime
from podtask_api.api_models import RunStatus
from podtask_api.run_listing import RunFilters

TaskFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE_PATTERN,
        description="Only runs of this task (its id).",
    ),
]


# Where a page of a list starts (`GET /api/v1/runs`, `GET /api/v1/schedules`).
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=4096,
        description="The `nextCursor` of the previous page, with the same filters.",
    ),
]


@dataclass(frozen=True)
class RunQuery:
    """The filters asked for; `matches_none` when two of them cannot both hold (`task` and
    `taskIdentifier` naming different tasks)."""

    filters: RunFilters
    matches_none: bool = False


async def run_query(
    status: Annotated[
        list[RunStatus] | None,
        Query(description="Only runs in one of these statuses (repeat for several)."),
    ] = None,
    task_identifier: Annotated[TaskFilter, Query(alias="taskIdentifier")] = None,
    task: TaskFilter = None,
    tag: Annotated[
        list[Annotated[str, Query(min_length=1, max_length=128)]] | None,
        Query(description="Only runs with one of these tags (repeat for several)."),
    ] = None,
    queue: Annotated[
        str | None, Query(min_length=1, max_length=253, description="Only runs of this queue.")
    ] = None,
    created_from: Annotated[
        IsoTime | None,
        Query(
            alias="createdFrom",
            description="Only runs created at or after this time (ISO 8601; no zone: UTC).",
        ),
    ] = None,
    created_to: Annotated[
        IsoTime | None,
        Query(
            alias="createdTo",
            description="Only runs created at or before this time (ISO 8601; no zone: UTC).",
        ),
    ] = None,
    is_test: Annotated[
        bool | None,
        Query(
            alias="isTest",
            description="true: only test runs; false: no test runs; left out: both.",
        ),
    ] = None,
    parent_run_id: Annotated[
        str | None,
        Query(
            alias="parentRunId",
            min_length=1,
            max_length=63,
            pattern=LABEL_VALUE_PATTERN,
            description="Only the runs this run triggered (its children).",
        ),
    ] = None,
    schedule_id: Annotated[
        str | None,
        Query(
            alias="scheduleId",
            min_length=1,
            max_length=63,
            pattern=LABEL_VALUE_PATTERN,
            description="Only the runs this schedule triggered (its id).",
        ),
    ] = None,
) -> RunQuery:
    task_id = task_identifier if task_identifier is not None else task
    filters = RunFilters(
        statuses=frozenset(str(s) for s in status or ()),
        task_id=task_id,
        tags=frozenset(tag or ()),
        queue=queue,
        created_from=created_from,  # IsoTime: in UTC
        created_to=created_to,
        is_test=is_test,
        parent_run_id=parent_run_id,
        schedule_id=schedule_id,
    )
    return RunQuery(filters, matches_none=task is not None and task_id != task)


RunQueryDep = Annotated[RunQuery, Depends(run_query)]
