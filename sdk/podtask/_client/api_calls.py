"""The client's operations, each once, without I/O: the request it sends (`ApiCall`) and
how its answer is read, the run filters, and the rules of waiting and of resending a batch.

`podtask._client.client_transport` sends an `ApiCall` (blocking or awaiting);
`podtask.client.PodtaskClient` exposes each operation both ways.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypedDict, TypeVar, Unpack
from urllib.parse import quote

from podtask._authoring.run_results import RunHandle, RunResult, is_finished
from podtask._authoring.trigger_options import (
    Seconds,
    TriggerOptions,
    batch_body,
    options_to_wire,
    to_json_value,
    trigger_body,
)
from podtask._client.client_config import (
    ClientConfig,
    PodtaskApiError,
    PodtaskConnectionError,
    RunWaitTimeoutError,
)
from podtask._contract.resources import format_timestamp
from podtask.errors import PodtaskError

R = TypeVar("R")

FIRST_POLL_SECONDS = 0.2
POLL_GROWTH = 1.5
MAX_POLL_SECONDS = 2.0
# Runs polled at once by the async waits of a batch; the blocking ones poll one by one.
CONCURRENT_POLLS = 16
# A batch is sent this many times at most while the API cannot be reached or fails (5xx):
# 0.5 + 1 + 2 + 4 + 8 + 8 + 8 s, about half a minute, long enough for an API process or pod to
# be restarted (five tries, 7.5 s, gave up before a restarted API answered on a loaded machine).
BATCH_TRIES = 8
FIRST_BATCH_BACKOFF_SECONDS = 0.5
MAX_BATCH_BACKOFF_SECONDS = 8.0
# Runs per page: the API's default, and its maximum (what `iter_runs` asks for).
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class ApiCall(Generic[R]):
    """One request to the API, and how to read its answer's JSON into the result."""

    method: str
    path: str
    read: Callable[[Any], R]
    body: Any = None
    params: Sequence[tuple[str, str]] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    # An answer that streams as long as something writes it: no read timeout, or this one
    # (seconds) when the API keeps it alive (longer silence: the connection is dead).
    open_ended: bool = False
    silence_limit: float | None = None

    def request(self, config: ClientConfig) -> dict[str, Any]:
        """The arguments of `httpx.Client.request` (and of `stream`) for this call."""
        return {
            "method": self.method,
            "url": config.url(self.path),
            "json": self.body,
            "params": list(self.params),
            "headers": {**config.headers, **self.headers},
        }


def _as_dict(answer: Any) -> dict[str, Any]:
    return dict(answer)


def _items(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(answer.get("data") or [])


def _run_path(run_id: str) -> str:
    return f"/api/v1/runs/{quote(run_id, safe='')}"


def _queue_path(name: str) -> str:
    return f"/api/v1/queues/{quote(name, safe='')}"


# -- triggering -----------------------------------------------------------------------------


def trigger(
    task_id: str, payload: Any = None, **options: Unpack[TriggerOptions]
) -> ApiCall[RunHandle]:
    """Trigger one run of `task_id`; returns at once with its handle (`.id`, `.is_cached`)."""
    return ApiCall(
        "POST",
        f"/api/v1/tasks/{quote(task_id, safe='')}/trigger",
        lambda answer: RunHandle.from_wire(answer, task_id),
        trigger_body(payload, options),
    )


def new_batch_key() -> str:
    """The idempotency key of a batch whose caller gave none: its retries find it by this."""
    return "batch-" + uuid.uuid4().hex


def batch_trigger(
    task_id: str, items: Iterable[Any], *, idempotency_key: str | None = None
) -> ApiCall[list[RunHandle]]:
    """The request of a batch: its items, and its idempotency key (given, else a fresh one)."""
    return ApiCall(
        "POST",
        "/api/v1/tasks/batch",
        lambda answer: [RunHandle.from_wire(run, task_id) for run in answer["runs"]],
        batch_body(task_id, items),
        headers={"Idempotency-Key": idempotency_key or new_batch_key()},
    )


def batch_may_retry(error: PodtaskError) -> bool:
    """Whether a batch that failed so may be sent again (with its key): the API was not
    reached, the connection dropped or timed out, or the API failed (not: refused it)."""
    if isinstance(error, PodtaskConnectionError):
        return True
    return isinstance(error, PodtaskApiError) and (error.status >= 500 or error.status == 429)


def batch_backoff(tries: int) -> float:
    """Seconds to wait after try number `tries` (1-based) of a batch failed."""
    return float(min(MAX_BATCH_BACKOFF_SECONDS, FIRST_BATCH_BACKOFF_SECONDS * 2 ** (tries - 1)))


def batch_pause(tries: int, error: PodtaskError) -> float:
    """Seconds to wait before sending a batch again after try `tries` failed with `error`;
    `error` itself when it is not to be sent again (refused, or tried `BATCH_TRIES` times)."""
    if tries >= BATCH_TRIES or not batch_may_retry(error):
        raise error
    return batch_backoff(tries)


# -- runs -----------------------------------------------------------------------------------


def get_run(run_id: str) -> ApiCall[dict[str, Any]]:
    """The run as `GET /api/v1/runs/{id}` shows it (status, payload, output, error, …)."""
    return ApiCall("GET", _run_path(run_id), _as_dict)


def cancel_run(run_id: str) -> ApiCall[dict[str, Any]]:
    """Cancel a run that has not finished; the run as the API shows it now.

    The operator then stops its pod and ends it Canceled (its status may still show
    the state it was in). Canceling again is harmless; canceling a finished run raises
    `PodtaskApiError` with code `run_finished` (HTTP 409).
    """
    return ApiCall("POST", _run_path(run_id) + "/cancel", _as_dict)


class _SamePayload:
    def __repr__(self) -> str:
        return "SAME_PAYLOAD"


SAME_PAYLOAD: Any = _SamePayload()
"""`replay_run`'s default payload: the replayed run's own (None would be a null payload)."""


def replay_body(payload: Any) -> dict[str, Any]:
    """The body of `POST /api/v1/runs/{id}/replay`: no payload field keeps the old payload."""
    if payload is SAME_PAYLOAD:
        return {}
    return {"payload": to_json_value(payload)}


def replay_run(run_id: str, payload: Any = SAME_PAYLOAD) -> ApiCall[RunHandle]:
    """Trigger a new run as `run_id` was triggered (same task version, options, tags);
    with `payload` instead of the old one when given. The new run's handle."""
    return ApiCall(
        "POST",
        _run_path(run_id) + "/replay",
        lambda answer: RunHandle.from_wire(answer, str(answer.get("taskId") or "")),
        replay_body(payload),
    )


def reschedule_body(delay: Seconds | datetime) -> dict[str, Any]:
    """The body of `POST /api/v1/runs/{id}/reschedule`; `delay` as a trigger's delay."""
    if delay is None:
        raise TypeError("rescheduling needs a delay: seconds, a timedelta or a datetime")
    return {"delay": options_to_wire({"delay": delay})["delay"]}


def reschedule_run(run_id: str, delay: Seconds | datetime) -> ApiCall[dict[str, Any]]:
    """Move the start of a run that is still Delayed: `delay` seconds (or a timedelta)
    from now, or a `datetime`. Any other state raises `PodtaskApiError` with code
    `run_not_delayed` (HTTP 409). The run as the API shows it now."""
    return ApiCall("POST", _run_path(run_id) + "/reschedule", _as_dict, reschedule_body(delay))


class RunFilters(TypedDict, total=False):
    """Which runs to list: `status` (one or several; "Pending" before the operator has seen
    a run), `task` (its id), `tag` (one or several: a run with any of them), `queue`, the
    creation time from/to (inclusive; a naive datetime is local time), `is_test` (True:
    test runs only; False: no test runs), and `schedule_id` (the runs a schedule triggered)."""

    status: str | Sequence[str] | None
    task: str | None
    tag: str | Sequence[str] | None
    queue: str | None
    created_from: datetime | None
    created_to: datetime | None
    is_test: bool | None
    schedule_id: str | None


def _several(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def run_filter_params(**filters: Unpack[RunFilters]) -> list[tuple[str, str]]:
    """The filters in the query of `GET /api/v1/runs` (and of its event stream): statuses and
    tags may repeat (a run matches any)."""
    unknown = sorted(set(filters) - set(RunFilters.__annotations__))
    if unknown:
        raise TypeError(
            f"unknown run filter(s) {', '.join(map(repr, unknown))}; valid filters are: "
            + ", ".join(RunFilters.__annotations__)
        )
    params = [("status", s) for s in _several(filters.get("status"))]
    params += [("tag", t) for t in _several(filters.get("tag"))]
    if (task := filters.get("task")) is not None:
        params.append(("taskIdentifier", task))
    if (queue := filters.get("queue")) is not None:
        params.append(("queue", queue))
    if (created_from := filters.get("created_from")) is not None:
        params.append(("createdFrom", format_timestamp(created_from)))
    if (created_to := filters.get("created_to")) is not None:
        params.append(("createdTo", format_timestamp(created_to)))
    if (is_test := filters.get("is_test")) is not None:
        params.append(("isTest", "true" if is_test else "false"))
    if (schedule_id := filters.get("schedule_id")) is not None:
        params.append(("scheduleId", schedule_id))
    return params


def run_list_params(
    *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None, **filters: Unpack[RunFilters]
) -> list[tuple[str, str]]:
    """The query of `GET /api/v1/runs`: the filters, the page size and where the page starts."""
    params = [*run_filter_params(**filters), ("limit", str(limit))]
    if cursor is not None:
        params.append(("cursor", cursor))
    return params


@dataclass(frozen=True)
class RunPage:
    """One page of `GET /api/v1/runs`: run summaries, newest first, and the next page's
    cursor (None on the last page). A page may hold fewer runs than asked and still have a
    next one."""

    runs: list[dict[str, Any]]
    next_cursor: str | None

    @classmethod
    def from_wire(cls, answer: Mapping[str, Any]) -> RunPage:
        return cls(runs=list(answer.get("data") or []), next_cursor=answer.get("nextCursor"))


def list_runs(
    *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None, **filters: Unpack[RunFilters]
) -> ApiCall[RunPage]:
    """One page of runs, newest first (runs with an idempotency key after the others).

    Filters (`RunFilters`): `status`, `task`, `tag`, `queue`, `created_from`, `created_to`,
    `is_test`, `schedule_id`.
    `limit`: 1 to 100. Pass a page's `next_cursor` as `cursor`, with the same filters, for
    the next.
    """
    params = run_list_params(limit=limit, cursor=cursor, **filters)
    return ApiCall("GET", "/api/v1/runs", RunPage.from_wire, params=params)


def logs_params(attempt: int | None, follow: bool) -> dict[str, str]:
    params = {"attempt": str(attempt)} if attempt is not None else {}
    return {**params, "follow": "true"} if follow else params


def run_logs(run_id: str, *, attempt: int | None = None, follow: bool = False) -> ApiCall[Any]:
    """The log of an attempt of the run (the latest by default), streamed as text."""
    params = list(logs_params(attempt, follow).items())
    path = _run_path(run_id) + "/logs"
    return ApiCall("GET", path, lambda answer: answer, params=params, open_ended=follow)


# -- tasks, deployments and queues ----------------------------------------------------------


def list_tasks() -> ApiCall[list[dict[str, Any]]]:
    """The deployed tasks: id, version, queue, machine, retry, maxDuration, ttl, …"""
    return ApiCall("GET", "/api/v1/tasks", _items)


def create_deployment(
    manifest: Mapping[str, Any], image: str, version: str | None = None
) -> ApiCall[dict[str, Any]]:
    """Register a manifest (`podtask index`) and its image as the tasks' current version."""
    body: dict[str, Any] = {"manifest": dict(manifest), "image": image}
    if version is not None:
        body["version"] = version
    return ApiCall("POST", "/api/v1/deployments", _as_dict, body)


def list_deployments() -> ApiCall[list[dict[str, Any]]]:
    """The deployments, newest first: version, image, createdAt, tasks."""
    return ApiCall("GET", "/api/v1/deployments", lambda a: list(a.get("deployments") or []))


def list_queues() -> ApiCall[list[dict[str, Any]]]:
    """The queues: name, concurrencyLimit (its own), limitInForce, paused, running and queued."""
    return ApiCall("GET", "/api/v1/queues", _items)


def get_queue(name: str) -> ApiCall[dict[str, Any]]:
    """The queue: its limit, whether it is paused, its running and queued counts."""
    return ApiCall("GET", _queue_path(name), _as_dict)


def pause_queue(name: str) -> ApiCall[dict[str, Any]]:
    """Start no more runs of the queue until it is resumed; the queue as it is now."""
    return ApiCall("POST", _queue_path(name) + "/pause", _as_dict)


def resume_queue(name: str) -> ApiCall[dict[str, Any]]:
    """Start the queue's runs again; the queue as it is now."""
    return ApiCall("POST", _queue_path(name) + "/resume", _as_dict)


def set_queue_concurrency(name: str, limit: int | None) -> ApiCall[dict[str, Any]]:
    """Set the queue's concurrency limit at once (None: back to the declared one)."""
    path = _queue_path(name) + "/concurrency"
    return ApiCall("PUT", path, _as_dict, {"concurrencyLimit": limit})


# -- schedules -----------------------------------------------------------------------------


def _schedule_path(schedule_id: str) -> str:
    return f"/api/v1/schedules/{quote(schedule_id, safe='')}"


def create_schedule(
    task: str,
    cron: str,
    *,
    timezone: str = "UTC",
    external_id: str | None = None,
    deduplication_key: str | None = None,
    active: bool = True,
) -> ApiCall[dict[str, Any]]:
    """Run `task` at each time `cron` gives (5 fields, or @daily, @hourly, …) in `timezone`
    (IANA); the schedule as the API shows it (`id`, `nextRun`, `upcoming`, …).

    `external_id` is yours (the task's payload carries it). Creating a schedule of the same
    task with the same `deduplication_key` again updates that schedule instead of making a
    second one. A bad cron or timezone, or a task not deployed, raises `PodtaskApiError`
    (422) naming the field.
    """
    body: dict[str, Any] = {"task": task, "cron": cron, "timezone": timezone, "active": active}
    if external_id is not None:
        body["externalId"] = external_id
    if deduplication_key is not None:
        body["deduplicationKey"] = deduplication_key
    return ApiCall("POST", "/api/v1/schedules", _as_dict, body)


def schedule_list_params(
    *,
    task: str | None = None,
    type: str | None = None,
    active: bool | None = None,
    limit: int = MAX_PAGE_SIZE,
    cursor: str | None = None,
) -> list[tuple[str, str]]:
    """The query of `GET /api/v1/schedules`: the filters, the page size, the page's start."""
    params = [("limit", str(limit))]
    if task is not None:
        params.append(("task", task))
    if type is not None:
        params.append(("type", type))
    if active is not None:
        params.append(("active", "true" if active else "false"))
    if cursor is not None:
        params.append(("cursor", cursor))
    return params


@dataclass(frozen=True)
class SchedulePage:
    """One page of `GET /api/v1/schedules`: schedules in id order, and the next page's
    cursor (None on the last page)."""

    schedules: list[dict[str, Any]]
    next_cursor: str | None

    @classmethod
    def from_wire(cls, answer: Mapping[str, Any]) -> SchedulePage:
        return cls(list(answer.get("data") or []), answer.get("nextCursor"))


def schedule_page(
    *,
    task: str | None = None,
    type: str | None = None,
    active: bool | None = None,
    limit: int = MAX_PAGE_SIZE,
    cursor: str | None = None,
) -> ApiCall[SchedulePage]:
    """One page of schedules (`list_schedules` goes through every page)."""
    params = schedule_list_params(task=task, type=type, active=active, limit=limit, cursor=cursor)
    return ApiCall("GET", "/api/v1/schedules", SchedulePage.from_wire, params=params)


def get_schedule(schedule_id: str) -> ApiCall[dict[str, Any]]:
    """The schedule: task, cron, timezone, type, active, its last and next runs."""
    return ApiCall("GET", _schedule_path(schedule_id), _as_dict)


def update_schedule(
    schedule_id: str,
    *,
    task: str | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    external_id: str | None = None,
) -> ApiCall[dict[str, Any]]:
    """Change an IMPERATIVE schedule: the fields given, the others as they are; the
    schedule as it is now. A DECLARATIVE one raises `PodtaskApiError` (409
    `declarative_schedule`): change it where its task declares it."""
    given = {"task": task, "cron": cron, "timezone": timezone, "externalId": external_id}
    body = {name: value for name, value in given.items() if value is not None}
    return ApiCall("PUT", _schedule_path(schedule_id), _as_dict, body)


def activate_schedule(schedule_id: str) -> ApiCall[dict[str, Any]]:
    """Trigger the schedule's runs again from its next tick on; the schedule as it is now."""
    return ApiCall("POST", _schedule_path(schedule_id) + "/activate", _as_dict)


def deactivate_schedule(schedule_id: str) -> ApiCall[dict[str, Any]]:
    """Trigger no more runs of the schedule until it is activated (declared ones too)."""
    return ApiCall("POST", _schedule_path(schedule_id) + "/deactivate", _as_dict)


def delete_schedule(schedule_id: str) -> ApiCall[dict[str, Any]]:
    """Delete an IMPERATIVE schedule (its runs stay); the schedule as it was. A DECLARATIVE
    one raises `PodtaskApiError` (409 `declarative_schedule`)."""
    return ApiCall("DELETE", _schedule_path(schedule_id), _as_dict)


def timezones() -> ApiCall[list[str]]:
    """The IANA zones a schedule may use, sorted."""
    return ApiCall("GET", "/api/v1/timezones", lambda answer: list(answer["timezones"]))


# -- waiting --------------------------------------------------------------------------------


def poll_delay(poll: int) -> float:
    """Seconds to wait after poll number `poll` (0-based) of a run that is not finished."""
    return min(MAX_POLL_SECONDS, FIRST_POLL_SECONDS * POLL_GROWTH**poll)


class RunWait:
    """The bookkeeping of one wait: which runs are still pending, the backoff, the deadline."""

    def __init__(self, run_ids: Sequence[str], timeout: float | None) -> None:
        self._order = list(run_ids)
        self._pending = list(dict.fromkeys(run_ids))  # a run named twice is polled once
        self._results: dict[str, RunResult] = {}
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._polls = 0

    def pending(self) -> list[str]:
        return list(self._pending)

    def seen(self, run_id: str, view: Mapping[str, Any] | None) -> None:
        if view is not None and is_finished(view):
            self._results[run_id] = RunResult.from_view(view)
            self._pending.remove(run_id)

    def next_delay(self) -> float | None:
        """Seconds to sleep before the next round; None when all are done. Raises at timeout."""
        if not self._pending:
            return None
        delay = poll_delay(self._polls)
        self._polls += 1
        if self._deadline is not None and self._timeout is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise RunWaitTimeoutError(self._pending, self._timeout)
            delay = min(delay, left)
        return delay

    def rounds(self) -> Iterator[float]:
        """Seconds to sleep before each round of polls (none before the first), until every
        run has finished. Raises `RunWaitTimeoutError` at the timeout."""
        pause: float | None = 0.0
        while pause is not None:
            yield pause
            pause = self.next_delay()

    def results(self) -> list[RunResult]:
        return [self._results[run_id] for run_id in self._order]
