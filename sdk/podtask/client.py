"""Triggering tasks by id, and waiting for their runs, from any Python code, over the API.

    from podtask.client import tasks

    handle = tasks.trigger("hello-world", {"name": "Ada"}, tags=["docs"])
    result = tasks.trigger_and_wait("hello-world", {"name": "Ada"})
    print(result.unwrap())

Configuration comes from `PODTASK_API_URL` and `PODTASK_API_KEY`, or from
`configure(...)`, or from an explicit `PodtaskClient(api_url=..., api_key=...)`.
Inside a task pod there is no API key: the client then uses the attempt's own
token (`PODTASK_ATTEMPT_TOKEN`, set by the operator), and the API makes every
run triggered with it a child of the running task's run (`parentRunId`), which
that token may then read.

Runs can be managed too: `cancel_run(id)`, `replay_run(id, payload=...)` (a new run of the
same task, options and task version; the old payload unless a new one is given) and
`reschedule_run(id, delay)` (a run still Delayed). They need an API key.

And read: `list_runs(status=..., task=..., tag=..., queue=..., created_from=...,
created_to=..., limit=..., cursor=...)` gives one page (newest first) and its
`next_cursor`; `iter_runs(...)` (same filters) goes through every page. `run_logs(id,
attempt=..., follow=...)` yields an attempt's log as text, as it is written when
following. `list_tasks()`, `list_queues()` and `get_queue(name)` show what is deployed;
`pause_queue(name)`, `resume_queue(name)` and `set_queue_concurrency(name, limit)`
change a queue at once (a limit of None goes back to the declared one).

Every call blocks; its twin with the `_async` suffix is a coroutine
(`await tasks.trigger_async(...)`). Waiting polls `GET /api/v1/runs/{id}` with a
gentle backoff (0.2 s, growing to 2 s) until the run reaches a final status.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Unpack
from urllib.parse import quote

import httpx

from podtask.errors import PodtaskError
from podtask.resources import format_timestamp
from podtask.run_results import RunHandle, RunResult, is_finished
from podtask.trigger_options import (
    Seconds,
    TriggerOptions,
    batch_body,
    options_to_wire,
    to_json_value,
    trigger_body,
)

ENV_API_URL = "PODTASK_API_URL"
ENV_API_KEY = "PODTASK_API_KEY"
ENV_ATTEMPT_TOKEN = "PODTASK_ATTEMPT_TOKEN"

DEFAULT_TIMEOUT_SECONDS = 30.0
FIRST_POLL_SECONDS = 0.2
POLL_GROWTH = 1.5
MAX_POLL_SECONDS = 2.0
# Runs polled at once by the async waits of a batch; the blocking ones poll one by one.
CONCURRENT_POLLS = 16
# Answers that say "not now" rather than "no": a wait rides them out.
_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


class PodtaskApiError(PodtaskError):
    """The API refused or failed a request: its HTTP status, error code, message and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{message} (HTTP {status}, {code})")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @property
    def is_transient(self) -> bool:
        return self.status in _TRANSIENT_STATUSES


class PodtaskConnectionError(PodtaskError):
    """The API could not be reached (or did not answer in time)."""


class ClientNotConfiguredError(PodtaskError):
    """No API address is known: neither given nor in `PODTASK_API_URL`."""


class RunWaitTimeoutError(PodtaskError, TimeoutError):
    """Runs still not finished when a wait's timeout passed; `run_ids` are those runs."""

    def __init__(self, run_ids: Sequence[str], timeout: float) -> None:
        self.run_ids = list(run_ids)
        shown = ", ".join(self.run_ids[:5]) + (" …" if len(self.run_ids) > 5 else "")
        super().__init__(f"{len(self.run_ids)} run(s) not finished after {timeout:g}s: {shown}")


# A batch is sent this many times at most while the API cannot be reached or fails (5xx).
BATCH_TRIES = 5
FIRST_BATCH_BACKOFF_SECONDS = 0.5
MAX_BATCH_BACKOFF_SECONDS = 8.0


def new_batch_key() -> str:
    """The idempotency key of a batch whose caller gave none: its retries find it by this."""
    return "batch-" + uuid.uuid4().hex


def batch_may_retry(error: PodtaskError) -> bool:
    """Whether a batch that failed so may be sent again (with its key): the API was not
    reached, the connection dropped or timed out, or the API failed (not: refused it)."""
    if isinstance(error, PodtaskConnectionError):
        return True
    return isinstance(error, PodtaskApiError) and (error.status >= 500 or error.status == 429)


def batch_backoff(tries: int) -> float:
    """Seconds to wait after try number `tries` (1-based) of a batch failed."""
    return float(min(MAX_BATCH_BACKOFF_SECONDS, FIRST_BATCH_BACKOFF_SECONDS * 2 ** (tries - 1)))


def poll_delay(poll: int) -> float:
    """Seconds to wait after poll number `poll` (0-based) of a run that is not finished."""
    return min(MAX_POLL_SECONDS, FIRST_POLL_SECONDS * POLL_GROWTH**poll)


@dataclass(frozen=True)
class ClientConfig:
    """Where the API is, and the credential to send: an API key, else an attempt token."""

    api_url: str
    api_key: str | None = field(default=None, repr=False)
    attempt_token: str | None = field(default=None, repr=False)

    @classmethod
    def resolve(
        cls,
        env: Mapping[str, str],
        *,
        api_url: str | None = None,
        api_key: str | None = None,
        attempt_token: str | None = None,
    ) -> ClientConfig:
        """Each setting as given, else from `env`. One credential is sent: a given one first
        (API key, else attempt token), else `PODTASK_API_KEY`, else `PODTASK_ATTEMPT_TOKEN`."""
        url = api_url or env.get(ENV_API_URL)
        if not url:
            raise ClientNotConfiguredError(
                f"the podtask API address is not configured: set {ENV_API_URL} (and "
                f"{ENV_API_KEY}), or call podtask.client.configure(api_url=..., api_key=...)"
            )
        if api_key or attempt_token:
            key, token = api_key or None, None if api_key else attempt_token
        else:
            key = env.get(ENV_API_KEY) or None
            token = None if key else (env.get(ENV_ATTEMPT_TOKEN) or None)
        return cls(api_url=url.rstrip("/"), api_key=key, attempt_token=token)

    @property
    def headers(self) -> dict[str, str]:
        credential = self.api_key or self.attempt_token
        return {"Authorization": f"Bearer {credential}"} if credential else {}

    def url(self, path: str) -> str:
        return self.api_url + path


def api_error(status: int, body: Any, text: str) -> PodtaskApiError:
    """The error an API answer stands for: its `{"error": {...}}` if it has one."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return PodtaskApiError(
            status, str(error.get("code") or "error"), error["message"], error.get("details")
        )
    return PodtaskApiError(status, "http_error", text[:500] or f"HTTP {status}")


def _answer(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and body is not None:
        return body
    if response.is_success:
        raise PodtaskApiError(response.status_code, "invalid_answer", "the answer is not JSON")
    raise api_error(response.status_code, body, response.text)


def _unreachable(config: ClientConfig, exc: httpx.TransportError) -> PodtaskConnectionError:
    return PodtaskConnectionError(
        f"cannot reach the podtask API at {config.api_url}: {type(exc).__name__}: {exc}"
    )


def _run_path(run_id: str) -> str:
    return f"/api/v1/runs/{quote(run_id, safe='')}"


def _trigger_path(task_id: str) -> str:
    return f"/api/v1/tasks/{quote(task_id, safe='')}/trigger"


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


def reschedule_body(delay: Seconds | datetime) -> dict[str, Any]:
    """The body of `POST /api/v1/runs/{id}/reschedule`; `delay` as a trigger's delay."""
    if delay is None:
        raise TypeError("rescheduling needs a delay: seconds, a timedelta or a datetime")
    return {"delay": options_to_wire({"delay": delay})["delay"]}


def _replay_handle(answer: Mapping[str, Any]) -> RunHandle:
    return RunHandle.from_wire(answer, str(answer.get("taskId") or ""))


# Runs per page: the API's default, and its maximum (what `iter_runs` asks for).
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


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


def _deployment(manifest: Mapping[str, Any], image: str, version: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"manifest": dict(manifest), "image": image}
    if version is not None:
        body["version"] = version
    return body


def _several(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def run_list_params(
    *,
    status: str | Sequence[str] | None = None,
    task: str | None = None,
    tag: str | Sequence[str] | None = None,
    queue: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> list[tuple[str, str]]:
    """The query of `GET /api/v1/runs`: statuses and tags may repeat (a run matches any)."""
    params = [("status", s) for s in _several(status)] + [("tag", t) for t in _several(tag)]
    if task is not None:
        params.append(("taskIdentifier", task))
    if queue is not None:
        params.append(("queue", queue))
    if created_from is not None:
        params.append(("createdFrom", format_timestamp(created_from)))
    if created_to is not None:
        params.append(("createdTo", format_timestamp(created_to)))
    params.append(("limit", str(limit)))
    if cursor is not None:
        params.append(("cursor", cursor))
    return params


def logs_params(attempt: int | None, follow: bool) -> dict[str, str]:
    params = {"attempt": str(attempt)} if attempt is not None else {}
    return {**params, "follow": "true"} if follow else params


def _queue_path(name: str) -> str:
    return f"/api/v1/queues/{quote(name, safe='')}"


def _items(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(answer.get("data") or [])


class PodtaskClient:
    """A client of one podtask API. Thread-safe; usable from any number of event loops.

    Each event loop gets HTTP connections of its own; `await client.aclose()` (or
    `async with client`) before a loop ends closes that loop's (a long-lived loop, as in a
    web app, needs no such care).

    `http` / `async_http` replace the HTTP clients it would create (for proxies, custom
    transports, event hooks); they are used as given and never closed by it.
    """

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        attempt_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        http: httpx.Client | None = None,
        async_http: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = ClientConfig.resolve(
            os.environ, api_url=api_url, api_key=api_key, attempt_token=attempt_token
        )
        self._timeout = timeout
        self._given_http = http
        self._given_async_http = async_http
        self._http: httpx.Client | None = None
        # An httpx.AsyncClient belongs to the event loop it first ran on.
        self._async_http: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._async_http = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PodtaskClient(api_url={self.config.api_url!r})"

    # -- HTTP -------------------------------------------------------------------------------

    def _sync_http(self) -> httpx.Client:
        if self._given_http is not None:
            return self._given_http
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self._timeout)
            return self._http

    def _loop_http(self) -> httpx.AsyncClient:
        if self._given_async_http is not None:
            return self._given_async_http
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._async_http.get(loop)
            if found is None:
                found = self._async_http[loop] = httpx.AsyncClient(timeout=self._timeout)
            return found

    def _request(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] = {}
    ) -> Any:
        try:
            response = self._sync_http().request(
                method,
                self.config.url(path),
                json=body,
                headers={**self.config.headers, **headers},
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.config, exc) from exc
        return _answer(response)

    async def _request_async(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] = {}
    ) -> Any:
        try:
            response = await self._loop_http().request(
                method,
                self.config.url(path),
                json=body,
                headers={**self.config.headers, **headers},
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.config, exc) from exc
        return _answer(response)

    def _post_batch(self, body: Any, idempotency_key: str | None) -> Any:
        headers = {"Idempotency-Key": idempotency_key or new_batch_key()}
        for tries in range(1, BATCH_TRIES + 1):
            try:
                return self._request("POST", "/api/v1/tasks/batch", body, headers)
            except (PodtaskConnectionError, PodtaskApiError) as exc:
                if tries == BATCH_TRIES or not batch_may_retry(exc):
                    raise
            time.sleep(batch_backoff(tries))
        raise AssertionError("unreachable")

    async def _post_batch_async(self, body: Any, idempotency_key: str | None) -> Any:
        headers = {"Idempotency-Key": idempotency_key or new_batch_key()}
        for tries in range(1, BATCH_TRIES + 1):
            try:
                return await self._request_async("POST", "/api/v1/tasks/batch", body, headers)
            except (PodtaskConnectionError, PodtaskApiError) as exc:
                if tries == BATCH_TRIES or not batch_may_retry(exc):
                    raise
            await asyncio.sleep(batch_backoff(tries))
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the HTTP connections this client opened (not the ones it was given)."""
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    async def aclose(self) -> None:
        """Close this event loop's HTTP connections, and the blocking ones."""
        with self._lock:
            http = self._async_http.pop(asyncio.get_running_loop(), None)
        if http is not None:
            await http.aclose()
        self.close()

    def __enter__(self) -> PodtaskClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> PodtaskClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- triggering -------------------------------------------------------------------------

    def trigger(
        self, task_id: str, payload: Any = None, **options: Unpack[TriggerOptions]
    ) -> RunHandle:
        """Trigger one run of `task_id`; returns at once with its handle."""
        answer = self._request("POST", _trigger_path(task_id), trigger_body(payload, options))
        return RunHandle.from_wire(answer, task_id)

    async def trigger_async(
        self, task_id: str, payload: Any = None, **options: Unpack[TriggerOptions]
    ) -> RunHandle:
        body = trigger_body(payload, options)
        answer = await self._request_async("POST", _trigger_path(task_id), body)
        return RunHandle.from_wire(answer, task_id)

    def batch_trigger(
        self, task_id: str, items: Iterable[Any], *, idempotency_key: str | None = None
    ) -> list[RunHandle]:
        """Trigger a run of `task_id` per item, in one request: all are created or none.

        Each item is a payload, or a `BatchItem(payload, options)`, or a mapping of exactly
        `{"payload": ..., "options": {...}}`. At most 1,000 items.

        The batch is sent with an idempotency key (`idempotency_key`, else a fresh one), and
        sent again with it when the connection drops, the request times out or the API
        answers 5xx (a few times, with backoff): the API then answers with the same runs,
        never a second batch. Triggering the same items with the same key later does too.
        """
        body = batch_body(task_id, items)
        if not body["items"]:
            return []
        answer = self._post_batch(body, idempotency_key)
        return [RunHandle.from_wire(run, task_id) for run in answer["runs"]]

    async def batch_trigger_async(
        self, task_id: str, items: Iterable[Any], *, idempotency_key: str | None = None
    ) -> list[RunHandle]:
        body = batch_body(task_id, items)
        if not body["items"]:
            return []
        answer = await self._post_batch_async(body, idempotency_key)
        return [RunHandle.from_wire(run, task_id) for run in answer["runs"]]

    # -- runs -------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run as `GET /api/v1/runs/{id}` shows it (status, payload, output, error, …)."""
        view: dict[str, Any] = self._request("GET", _run_path(run_id))
        return view

    async def get_run_async(self, run_id: str) -> dict[str, Any]:
        view: dict[str, Any] = await self._request_async("GET", _run_path(run_id))
        return view

    def _poll(self, run_id: str) -> dict[str, Any] | None:
        """The run, or None when the API could not say right now."""
        try:
            return self.get_run(run_id)
        except PodtaskConnectionError:
            return None
        except PodtaskApiError as exc:
            if exc.is_transient:
                return None
            raise

    async def _poll_async(self, run_id: str, gate: asyncio.Semaphore) -> dict[str, Any] | None:
        async with gate:
            try:
                return await self.get_run_async(run_id)
            except PodtaskConnectionError:
                return None
            except PodtaskApiError as exc:
                if exc.is_transient:
                    return None
                raise

    def wait_for_runs(
        self, run_ids: Sequence[str], *, timeout: float | None = None
    ) -> list[RunResult]:
        """Wait until every run is in a final status; their results, in the order given."""
        waiting = _RunWait(run_ids, timeout)
        while True:
            for run_id in waiting.pending():
                waiting.seen(run_id, self._poll(run_id))
            delay = waiting.next_delay()
            if delay is None:
                return waiting.results()
            time.sleep(delay)

    async def wait_for_runs_async(
        self, run_ids: Sequence[str], *, timeout: float | None = None
    ) -> list[RunResult]:
        waiting = _RunWait(run_ids, timeout)
        gate = asyncio.Semaphore(CONCURRENT_POLLS)
        while True:
            pending = waiting.pending()
            views = await asyncio.gather(*(self._poll_async(run_id, gate) for run_id in pending))
            for run_id, view in zip(pending, views, strict=True):
                waiting.seen(run_id, view)
            delay = waiting.next_delay()
            if delay is None:
                return waiting.results()
            await asyncio.sleep(delay)

    def wait_for_run(self, run_id: str, *, timeout: float | None = None) -> RunResult:
        """Wait until the run is in a final status; its result."""
        return self.wait_for_runs([run_id], timeout=timeout)[0]

    async def wait_for_run_async(self, run_id: str, *, timeout: float | None = None) -> RunResult:
        return (await self.wait_for_runs_async([run_id], timeout=timeout))[0]

    # -- managing runs ----------------------------------------------------------------------

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        """Cancel a run that has not finished; the run as the API shows it now.

        The operator then stops its pod and ends it Canceled (its status may still show
        the state it was in). Canceling again is harmless; canceling a finished run raises
        `PodtaskApiError` with code `run_finished` (HTTP 409).
        """
        view: dict[str, Any] = self._request("POST", _run_path(run_id) + "/cancel")
        return view

    async def cancel_run_async(self, run_id: str) -> dict[str, Any]:
        view: dict[str, Any] = await self._request_async("POST", _run_path(run_id) + "/cancel")
        return view

    def replay_run(self, run_id: str, payload: Any = SAME_PAYLOAD) -> RunHandle:
        """Trigger a new run as `run_id` was triggered (same task version, options, tags);
        with `payload` instead of the old one when given. The new run's handle."""
        answer = self._request("POST", _run_path(run_id) + "/replay", replay_body(payload))
        return _replay_handle(answer)

    async def replay_run_async(self, run_id: str, payload: Any = SAME_PAYLOAD) -> RunHandle:
        path = _run_path(run_id) + "/replay"
        return _replay_handle(await self._request_async("POST", path, replay_body(payload)))

    def reschedule_run(self, run_id: str, delay: Seconds | datetime) -> dict[str, Any]:
        """Move the start of a run that is still Delayed: `delay` seconds (or a timedelta)
        from now, or a `datetime`. Any other state raises `PodtaskApiError` with code
        `run_not_delayed` (HTTP 409). The run as the API shows it now."""
        path = _run_path(run_id) + "/reschedule"
        view: dict[str, Any] = self._request("POST", path, reschedule_body(delay))
        return view

    async def reschedule_run_async(self, run_id: str, delay: Seconds | datetime) -> dict[str, Any]:
        path = _run_path(run_id) + "/reschedule"
        view: dict[str, Any] = await self._request_async("POST", path, reschedule_body(delay))
        return view

    # -- reading runs, tasks and queues -----------------------------------------------------

    def _get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        try:
            response = self._sync_http().get(
                self.config.url(path),
                params=httpx.QueryParams(list(params)),
                headers=self.config.headers,
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.config, exc) from exc
        return _answer(response)

    async def _get_async(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        try:
            response = await self._loop_http().get(
                self.config.url(path),
                params=httpx.QueryParams(list(params)),
                headers=self.config.headers,
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.config, exc) from exc
        return _answer(response)

    def list_runs(
        self,
        *,
        status: str | Sequence[str] | None = None,
        task: str | None = None,
        tag: str | Sequence[str] | None = None,
        queue: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of runs, newest first (runs with an idempotency key after the others).

        Filters: `status` (one or several; "Pending" before the operator has seen a run),
        `task` (its id), `tag` (one or several: a run with any of them), `queue`, and the
        creation time from/to (inclusive; a naive datetime is local time). `limit`: 1 to
        100. Pass a page's `next_cursor` as `cursor`, with the same filters, for the next.
        """
        params = run_list_params(
            status=status,
            task=task,
            tag=tag,
            queue=queue,
            created_from=created_from,
            created_to=created_to,
            limit=limit,
            cursor=cursor,
        )
        return RunPage.from_wire(self._get("/api/v1/runs", params))

    async def list_runs_async(
        self,
        *,
        status: str | Sequence[str] | None = None,
        task: str | None = None,
        tag: str | Sequence[str] | None = None,
        queue: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> RunPage:
        params = run_list_params(
            status=status,
            task=task,
            tag=tag,
            queue=queue,
            created_from=created_from,
            created_to=created_to,
            limit=limit,
            cursor=cursor,
        )
        return RunPage.from_wire(await self._get_async("/api/v1/runs", params))

    def iter_runs(
        self,
        *,
        status: str | Sequence[str] | None = None,
        task: str | None = None,
        tag: str | Sequence[str] | None = None,
        queue: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Every run that passes the filters (as `list_runs`), each once, page after page."""
        cursor: str | None = None
        while True:
            page = self.list_runs(
                status=status,
                task=task,
                tag=tag,
                queue=queue,
                created_from=created_from,
                created_to=created_to,
                limit=page_size,
                cursor=cursor,
            )
            yield from page.runs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def iter_runs_async(
        self,
        *,
        status: str | Sequence[str] | None = None,
        task: str | None = None,
        tag: str | Sequence[str] | None = None,
        queue: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            page = await self.list_runs_async(
                status=status,
                task=task,
                tag=tag,
                queue=queue,
                created_from=created_from,
                created_to=created_to,
                limit=page_size,
                cursor=cursor,
            )
            for run in page.runs:
                yield run
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _logs_timeout(self, follow: bool) -> httpx.Timeout:
        # A followed log may stay quiet for long while the task works: no read timeout.
        return httpx.Timeout(self._timeout, read=None) if follow else httpx.Timeout(self._timeout)

    def run_logs(
        self, run_id: str, *, attempt: int | None = None, follow: bool = False
    ) -> Iterator[str]:
        """The log of an attempt of the run (the latest by default) as text, in pieces.

        With `follow`, the pieces come as the task writes them, until its pod ends. Raises
        `PodtaskApiError` (404) when the run, the attempt or its pod is gone: finished pods
        are deleted after the operator's pod retention.
        """
        url = self.config.url(_run_path(run_id) + "/logs")
        params = logs_params(attempt, follow)
        try:
            with self._sync_http().stream(
                "GET",
                url,
                params=params,
                headers=self.config.headers,
                timeout=self._logs_timeout(follow),
            ) as response:
                if not response.is_success:
                    response.read()
                    _answer(response)
                yield from response.iter_text()
        except httpx.TransportError as exc:
            raise _unreachable(self.config, exc) from exc

    async def run_logs_async(
        self, run_id: str, *, attempt: int | None = None, follow: bool = False
    ) -> AsyncIterator[str]:
        url = self.config.url(_run_path(run_id) + "/logs")
        params = logs_params(attempt, follow)
        try:
            async with self._loop_http().stream(
                "GET",
                url,
                params=params,
                headers=self.config.headers,
                timeout=self._logs_timeout(follow),
            ) as response:
                if not response.is_success:
                    await response.aread()
                    _answer(response)
                async for text in response.aiter_text():
                    yield text
        except httpx.TransportError as exc:
            raise _unreachable(self.config, exc) from exc

    def list_tasks(self) -> list[dict[str, Any]]:
        """The deployed tasks: id, version, queue, machine, retry, maxDuration, ttl, …"""
        return _items(self._get("/api/v1/tasks"))

    async def list_tasks_async(self) -> list[dict[str, Any]]:
        return _items(await self._get_async("/api/v1/tasks"))

    def create_deployment(
        self, manifest: Mapping[str, Any], image: str, version: str | None = None
    ) -> dict[str, Any]:
        """Register a manifest (`podtask index`) and its image as the tasks' current version."""
        answer = self._request("POST", "/api/v1/deployments", _deployment(manifest, image, version))
        return dict(answer)

    async def create_deployment_async(
        self, manifest: Mapping[str, Any], image: str, version: str | None = None
    ) -> dict[str, Any]:
        body = _deployment(manifest, image, version)
        return dict(await self._request_async("POST", "/api/v1/deployments", body))

    def list_deployments(self) -> list[dict[str, Any]]:
        """The deployments, newest first: version, image, createdAt, tasks."""
        return list(self._get("/api/v1/deployments").get("deployments") or [])

    async def list_deployments_async(self) -> list[dict[str, Any]]:
        return list((await self._get_async("/api/v1/deployments")).get("deployments") or [])

    def list_queues(self) -> list[dict[str, Any]]:
        """The queues: name, concurrencyLimit, paused, running and queued."""
        return _items(self._get("/api/v1/queues"))

    async def list_queues_async(self) -> list[dict[str, Any]]:
        return _items(await self._get_async("/api/v1/queues"))

    def get_queue(self, name: str) -> dict[str, Any]:
        queue: dict[str, Any] = self._get(_queue_path(name))
        return queue

    async def get_queue_async(self, name: str) -> dict[str, Any]:
        queue: dict[str, Any] = await self._get_async(_queue_path(name))
        return queue

    def pause_queue(self, name: str) -> dict[str, Any]:
        """Start no more runs of the queue until it is resumed; the queue as it is now."""
        queue: dict[str, Any] = self._request("POST", _queue_path(name) + "/pause")
        return queue

    async def pause_queue_async(self, name: str) -> dict[str, Any]:
        queue: dict[str, Any] = await self._request_async("POST", _queue_path(name) + "/pause")
        return queue

    def resume_queue(self, name: str) -> dict[str, Any]:
        """Start the queue's runs again; the queue as it is now."""
        queue: dict[str, Any] = self._request("POST", _queue_path(name) + "/resume")
        return queue

    async def resume_queue_async(self, name: str) -> dict[str, Any]:
        queue: dict[str, Any] = await self._request_async("POST", _queue_path(name) + "/resume")
        return queue

    def set_queue_concurrency(self, name: str, limit: int | None) -> dict[str, Any]:
        """Set the queue's concurrency limit at once (None: back to the declared one)."""
        body = {"concurrencyLimit": limit}
        queue: dict[str, Any] = self._request("PUT", _queue_path(name) + "/concurrency", body)
        return queue

    async def set_queue_concurrency_async(self, name: str, limit: int | None) -> dict[str, Any]:
        body = {"concurrencyLimit": limit}
        path = _queue_path(name) + "/concurrency"
        queue: dict[str, Any] = await self._request_async("PUT", path, body)
        return queue

    # -- trigger and wait -------------------------------------------------------------------

    def trigger_and_wait(
        self,
        task_id: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        **options: Unpack[TriggerOptions],
    ) -> RunResult:
        """Trigger one run and wait for it to finish (`timeout`: seconds, None for ever)."""
        handle = self.trigger(task_id, payload, **options)
        return self.wait_for_run(handle.id, timeout=timeout)

    async def trigger_and_wait_async(
        self,
        task_id: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        **options: Unpack[TriggerOptions],
    ) -> RunResult:
        handle = await self.trigger_async(task_id, payload, **options)
        return await self.wait_for_run_async(handle.id, timeout=timeout)

    def batch_trigger_and_wait(
        self, task_id: str, items: Iterable[Any], *, timeout: float | None = None
    ) -> list[RunResult]:
        """`batch_trigger`, then wait for every run; results in item order."""
        handles = self.batch_trigger(task_id, items)
        return self.wait_for_runs([h.id for h in handles], timeout=timeout)

    async def batch_trigger_and_wait_async(
        self, task_id: str, items: Iterable[Any], *, timeout: float | None = None
    ) -> list[RunResult]:
        handles = await self.batch_trigger_async(task_id, items)
        return await self.wait_for_runs_async([h.id for h in handles], timeout=timeout)


class _RunWait:
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

    def results(self) -> list[RunResult]:
        return [self._results[run_id] for run_id in self._order]


# -- the module's own client, configured from the environment --------------------------------

_default: PodtaskClient | None = None
_default_lock = threading.Lock()


def configure(
    api_url: str | None = None,
    api_key: str | None = None,
    *,
    attempt_token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> PodtaskClient:
    """Set up the client that the module's functions (and `tasks`) use; what is not given
    comes from the environment."""
    global _default
    configured = PodtaskClient(api_url, api_key, attempt_token=attempt_token, timeout=timeout)
    with _default_lock:
        _default = configured
    return configured


def default_client() -> PodtaskClient:
    """The client the module's functions use: as configured, else from the environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PodtaskClient()
        return _default


def trigger(task_id: str, payload: Any = None, **options: Unpack[TriggerOptions]) -> RunHandle:
    """Trigger one run of `task_id`; returns at once with its handle (`.id`, `.is_cached`)."""
    return default_client().trigger(task_id, payload, **options)


async def trigger_async(
    task_id: str, payload: Any = None, **options: Unpack[TriggerOptions]
) -> RunHandle:
    return await default_client().trigger_async(task_id, payload, **options)


def trigger_and_wait(
    task_id: str,
    payload: Any = None,
    *,
    timeout: float | None = None,
    **options: Unpack[TriggerOptions],
) -> RunResult:
    """Trigger one run and wait for it to finish; its `RunResult` (`ok`, `output`, `error`)."""
    return default_client().trigger_and_wait(task_id, payload, timeout=timeout, **options)


async def trigger_and_wait_async(
    task_id: str,
    payload: Any = None,
    *,
    timeout: float | None = None,
    **options: Unpack[TriggerOptions],
) -> RunResult:
    return await default_client().trigger_and_wait_async(
        task_id, payload, timeout=timeout, **options
    )


def batch_trigger(
    task_id: str, items: Iterable[Any], *, idempotency_key: str | None = None
) -> list[RunHandle]:
    """Trigger a run of `task_id` per item (up to 1,000) in one request, all or none; sent
    again with the same idempotency key when it fails on the way (see the client's)."""
    return default_client().batch_trigger(task_id, items, idempotency_key=idempotency_key)


async def batch_trigger_async(
    task_id: str, items: Iterable[Any], *, idempotency_key: str | None = None
) -> list[RunHandle]:
    return await default_client().batch_trigger_async(
        task_id, items, idempotency_key=idempotency_key
    )


def batch_trigger_and_wait(
    task_id: str, items: Iterable[Any], *, timeout: float | None = None
) -> list[RunResult]:
    """`batch_trigger`, then wait for every run; their results in item order."""
    return default_client().batch_trigger_and_wait(task_id, items, timeout=timeout)


async def batch_trigger_and_wait_async(
    task_id: str, items: Iterable[Any], *, timeout: float | None = None
) -> list[RunResult]:
    return await default_client().batch_trigger_and_wait_async(task_id, items, timeout=timeout)


def get_run(run_id: str) -> dict[str, Any]:
    """The run as the API shows it."""
    return default_client().get_run(run_id)


async def get_run_async(run_id: str) -> dict[str, Any]:
    return await default_client().get_run_async(run_id)


def wait_for_run(run_id: str, *, timeout: float | None = None) -> RunResult:
    """Wait until the run is in a final status; its result."""
    return default_client().wait_for_run(run_id, timeout=timeout)


async def wait_for_run_async(run_id: str, *, timeout: float | None = None) -> RunResult:
    return await default_client().wait_for_run_async(run_id, timeout=timeout)


def cancel_run(run_id: str) -> dict[str, Any]:
    """Cancel a run that has not finished; the run as the API shows it now."""
    return default_client().cancel_run(run_id)


async def cancel_run_async(run_id: str) -> dict[str, Any]:
    return await default_client().cancel_run_async(run_id)


def replay_run(run_id: str, payload: Any = SAME_PAYLOAD) -> RunHandle:
    """A new run triggered as `run_id` was (with `payload` instead, when given); its handle."""
    return default_client().replay_run(run_id, payload)


async def replay_run_async(run_id: str, payload: Any = SAME_PAYLOAD) -> RunHandle:
    return await default_client().replay_run_async(run_id, payload)


def reschedule_run(run_id: str, delay: Seconds | datetime) -> dict[str, Any]:
    """Move the start of a Delayed run to `delay` (seconds, timedelta or datetime)."""
    return default_client().reschedule_run(run_id, delay)


async def reschedule_run_async(run_id: str, delay: Seconds | datetime) -> dict[str, Any]:
    return await default_client().reschedule_run_async(run_id, delay)


def list_runs(
    *,
    status: str | Sequence[str] | None = None,
    task: str | None = None,
    tag: str | Sequence[str] | None = None,
    queue: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> RunPage:
    """One page of runs, newest first, and the cursor of the next (see `PodtaskClient`)."""
    return default_client().list_runs(
        status=status,
        task=task,
        tag=tag,
        queue=queue,
        created_from=created_from,
        created_to=created_to,
        limit=limit,
        cursor=cursor,
    )


async def list_runs_async(
    *,
    status: str | Sequence[str] | None = None,
    task: str | None = None,
    tag: str | Sequence[str] | None = None,
    queue: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> RunPage:
    return await default_client().list_runs_async(
        status=status,
        task=task,
        tag=tag,
        queue=queue,
        created_from=created_from,
        created_to=created_to,
        limit=limit,
        cursor=cursor,
    )


def iter_runs(
    *,
    status: str | Sequence[str] | None = None,
    task: str | None = None,
    tag: str | Sequence[str] | None = None,
    queue: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    page_size: int = MAX_PAGE_SIZE,
) -> Iterator[dict[str, Any]]:
    """Every run that passes the filters, newest first, each once, over all pages."""
    return default_client().iter_runs(
        status=status,
        task=task,
        tag=tag,
        queue=queue,
        created_from=created_from,
        created_to=created_to,
        page_size=page_size,
    )


def iter_runs_async(
    *,
    status: str | Sequence[str] | None = None,
    task: str | None = None,
    tag: str | Sequence[str] | None = None,
    queue: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    page_size: int = MAX_PAGE_SIZE,
) -> AsyncIterator[dict[str, Any]]:
    """`iter_runs` for `async for`."""
    return default_client().iter_runs_async(
        status=status,
        task=task,
        tag=tag,
        queue=queue,
        created_from=created_from,
        created_to=created_to,
        page_size=page_size,
    )


def run_logs(run_id: str, *, attempt: int | None = None, follow: bool = False) -> Iterator[str]:
    """An attempt's log as text, in pieces (the latest attempt by default; `follow` streams)."""
    return default_client().run_logs(run_id, attempt=attempt, follow=follow)


def run_logs_async(
    run_id: str, *, attempt: int | None = None, follow: bool = False
) -> AsyncIterator[str]:
    """`run_logs` for `async for`."""
    return default_client().run_logs_async(run_id, attempt=attempt, follow=follow)


def create_deployment(
    manifest: Mapping[str, Any], image: str, version: str | None = None
) -> dict[str, Any]:
    """Register a manifest and its image as the current version of its tasks."""
    return default_client().create_deployment(manifest, image, version)


async def create_deployment_async(
    manifest: Mapping[str, Any], image: str, version: str | None = None
) -> dict[str, Any]:
    return await default_client().create_deployment_async(manifest, image, version)


def list_deployments() -> list[dict[str, Any]]:
    return default_client().list_deployments()


async def list_deployments_async() -> list[dict[str, Any]]:
    return await default_client().list_deployments_async()


def list_tasks() -> list[dict[str, Any]]:
    """The deployed tasks."""
    return default_client().list_tasks()


async def list_tasks_async() -> list[dict[str, Any]]:
    return await default_client().list_tasks_async()


def list_queues() -> list[dict[str, Any]]:
    """The queues, with their limits, pause and running and queued counts."""
    return default_client().list_queues()


async def list_queues_async() -> list[dict[str, Any]]:
    return await default_client().list_queues_async()


def get_queue(name: str) -> dict[str, Any]:
    return default_client().get_queue(name)


async def get_queue_async(name: str) -> dict[str, Any]:
    return await default_client().get_queue_async(name)


def pause_queue(name: str) -> dict[str, Any]:
    """Start no more runs of the queue until it is resumed."""
    return default_client().pause_queue(name)


async def pause_queue_async(name: str) -> dict[str, Any]:
    return await default_client().pause_queue_async(name)


def resume_queue(name: str) -> dict[str, Any]:
    """Start the queue's runs again."""
    return default_client().resume_queue(name)


async def resume_queue_async(name: str) -> dict[str, Any]:
    return await default_client().resume_queue_async(name)


def set_queue_concurrency(name: str, limit: int | None) -> dict[str, Any]:
    """Set the queue's concurrency limit at once; None goes back to the declared one."""
    return default_client().set_queue_concurrency(name, limit)


async def set_queue_concurrency_async(name: str, limit: int | None) -> dict[str, Any]:
    return await default_client().set_queue_concurrency_async(name, limit)


class TaskTriggers:
    """`tasks.trigger("hello-world", ...)`: the module's functions under one name, the way
    Trigger.dev spells them."""

    trigger = staticmethod(trigger)
    trigger_async = staticmethod(trigger_async)
    trigger_and_wait = staticmethod(trigger_and_wait)
    trigger_and_wait_async = staticmethod(trigger_and_wait_async)
    batch_trigger = staticmethod(batch_trigger)
    batch_trigger_async = staticmethod(batch_trigger_async)
    batch_trigger_and_wait = staticmethod(batch_trigger_and_wait)
    batch_trigger_and_wait_async = staticmethod(batch_trigger_and_wait_async)


tasks = TaskTriggers()
