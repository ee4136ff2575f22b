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
created_to=..., is_test=..., limit=..., cursor=...)` gives one page (newest first) and its
`next_cursor`; `iter_runs(...)` (same filters) goes through every page. `run_logs(id,
attempt=..., follow=...)` yields an attempt's log as text, as it is written when
following. `list_tasks()`, `list_queues()` and `get_queue(name)` show what is deployed;
`pause_queue(name)`, `resume_queue(name)` and `set_queue_concurrency(name, limit)`
change a queue at once (a limit of None goes back to the declared one).

And schedule: `create_schedule(task, cron, timezone=..., external_id=...,
deduplication_key=...)`, `list_schedules(task=..., type=..., active=...)`,
`get_schedule(id)`, `update_schedule(id, cron=..., ...)`, `activate_schedule(id)`,
`deactivate_schedule(id)`, `delete_schedule(id)`, `timezones()`.

And follow: `subscribe_to_run(id)` yields the run at each change until it ends,
`subscribe_to_runs(status=..., task=..., tag=..., queue=...)` the runs that change, for ever
(the API's event streams, reconnected after a dropped connection).

Every call blocks; its twin with the `_async` suffix is a coroutine
(`await tasks.trigger_async(...)`). Waiting polls `GET /api/v1/runs/{id}` with a
gentle backoff (0.2 s, growing to 2 s) until the run reaches a final status. Inside a
task a wait gives its run's queue slot back, and takes one again before it returns
(`podtask._client.attempt_waits`), so a parent never blocks the children it waits for.

Each operation is written once, without I/O, in `podtask._client.api_calls`; `PodtaskClient` sends
it blocking or awaited through the thin transports of `podtask._client.client_transport` (httpx,
imported when the first client is built), and the module's functions call the default
client.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, Unpack

from podtask._authoring.run_results import RunHandle, RunResult
from podtask._authoring.trigger_options import TriggerOptions
from podtask._client import api_calls
from podtask._client.api_calls import (
    BATCH_TRIES,
    CONCURRENT_POLLS,
    DEFAULT_PAGE_SIZE,
    FIRST_BATCH_BACKOFF_SECONDS,
    FIRST_POLL_SECONDS,
    MAX_BATCH_BACKOFF_SECONDS,
    MAX_PAGE_SIZE,
    MAX_POLL_SECONDS,
    POLL_GROWTH,
    SAME_PAYLOAD,
    RunFilters,
    RunPage,
    RunWait,
    batch_backoff,
    batch_may_retry,
    batch_pause,
    logs_params,
    new_batch_key,
    poll_delay,
    replay_body,
    reschedule_body,
    run_list_params,
)
from podtask._client.attempt_waits import released_slot, released_slot_async
from podtask._client.client_config import (
    DEFAULT_TIMEOUT_SECONDS,
    ClientConfig,
    ClientNotConfiguredError,
    PodtaskApiError,
    PodtaskConnectionError,
    RunWaitTimeoutError,
    api_error,
    is_passing_trouble,
)
from podtask._client.client_signatures import awaiting as _awaiting
from podtask._client.client_signatures import blocking as _blocking
from podtask._client.client_signatures import described_as
from podtask._client.event_streams import one_run, run_list
from podtask._client.paged_reads import PagedReads
from podtask._client.run_subscriptions import follow, follow_async
from podtask._contract.wire import ENV_API_KEY, ENV_API_URL, ENV_ATTEMPT_TOKEN

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BATCH_TRIES",
    "CONCURRENT_POLLS",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_TIMEOUT_SECONDS",
    "ENV_API_KEY",
    "ENV_API_URL",
    "ENV_ATTEMPT_TOKEN",
    "FIRST_BATCH_BACKOFF_SECONDS",
    "FIRST_POLL_SECONDS",
    "MAX_BATCH_BACKOFF_SECONDS",
    "MAX_PAGE_SIZE",
    "MAX_POLL_SECONDS",
    "POLL_GROWTH",
    "SAME_PAYLOAD",
    "ClientConfig",
    "ClientNotConfiguredError",
    "PodtaskApiError",
    "PodtaskClient",
    "PodtaskConnectionError",
    "RunFilters",
    "RunPage",
    "RunWaitTimeoutError",
    "TaskTriggers",
    "api_error",
    "batch_backoff",
    "batch_may_retry",
    "configure",
    "default_client",
    "logs_params",
    "new_batch_key",
    "poll_delay",
    "replay_body",
    "reschedule_body",
    "run_list_params",
    "tasks",
]

P = ParamSpec("P")
R = TypeVar("R")


class PodtaskClient(PagedReads):
    """A client of one podtask API. Thread-safe; usable from any number of event loops.

    Each event loop gets HTTP connections of its own; `await client.aclose()` (or
    `async with client`) before a loop ends closes that loop's (a long-lived loop, as in a
    web app, needs no such care).

    `http` / `async_http` replace the HTTP clients it would create (for proxies, custom
    transports, event hooks); they are used as given and never closed by it.

    Every operation is one of `podtask._client.api_calls`, sent blocking (`get_run`) or awaited
    (`get_run_async`); only waits, batches, pages and logs add a loop of their own here.
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
        # Here, not at the top: declaring a task imports this module, and needs no httpx.
        from podtask._client.client_transport import AwaitingTransport, BlockingTransport

        self.config = ClientConfig.resolve(
            os.environ, api_url=api_url, api_key=api_key, attempt_token=attempt_token
        )
        self._transport = BlockingTransport(self.config, timeout, http)
        self._loop_transport = AwaitingTransport(self.config, timeout, async_http)

    def __repr__(self) -> str:
        return f"PodtaskClient(api_url={self.config.api_url!r})"

    def close(self) -> None:
        """Close the HTTP connections this client opened (not the ones it was given)."""
        self._transport.close()

    async def aclose(self) -> None:
        """Close this event loop's HTTP connections, and the blocking ones."""
        await self._loop_transport.aclose()
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

    # -- one request each -----------------------------------------------------------------

    trigger = _blocking(api_calls.trigger)
    trigger_async = _awaiting(api_calls.trigger)
    get_run = _blocking(api_calls.get_run)
    get_run_async = _awaiting(api_calls.get_run)
    cancel_run = _blocking(api_calls.cancel_run)
    cancel_run_async = _awaiting(api_calls.cancel_run)
    replay_run = _blocking(api_calls.replay_run)
    replay_run_async = _awaiting(api_calls.replay_run)
    reschedule_run = _blocking(api_calls.reschedule_run)
    reschedule_run_async = _awaiting(api_calls.reschedule_run)
    list_runs = _blocking(api_calls.list_runs)
    list_runs_async = _awaiting(api_calls.list_runs)
    list_tasks = _blocking(api_calls.list_tasks)
    list_tasks_async = _awaiting(api_calls.list_tasks)
    create_deployment = _blocking(api_calls.create_deployment)
    create_deployment_async = _awaiting(api_calls.create_deployment)
    list_deployments = _blocking(api_calls.list_deployments)
    list_deployments_async = _awaiting(api_calls.list_deployments)
    list_queues = _blocking(api_calls.list_queues)
    list_queues_async = _awaiting(api_calls.list_queues)
    get_queue = _blocking(api_calls.get_queue)
    get_queue_async = _awaiting(api_calls.get_queue)
    pause_queue = _blocking(api_calls.pause_queue)
    pause_queue_async = _awaiting(api_calls.pause_queue)
    resume_queue = _blocking(api_calls.resume_queue)
    resume_queue_async = _awaiting(api_calls.resume_queue)
    set_queue_concurrency = _blocking(api_calls.set_queue_concurrency)
    set_queue_concurrency_async = _awaiting(api_calls.set_queue_concurrency)
    create_schedule = _blocking(api_calls.create_schedule)
    create_schedule_async = _awaiting(api_calls.create_schedule)
    get_schedule = _blocking(api_calls.get_schedule)
    get_schedule_async = _awaiting(api_calls.get_schedule)
    update_schedule = _blocking(api_calls.update_schedule)
    update_schedule_async = _awaiting(api_calls.update_schedule)
    activate_schedule = _blocking(api_calls.activate_schedule)
    activate_schedule_async = _awaiting(api_calls.activate_schedule)
    deactivate_schedule = _blocking(api_calls.deactivate_schedule)
    deactivate_schedule_async = _awaiting(api_calls.deactivate_schedule)
    delete_schedule = _blocking(api_calls.delete_schedule)
    delete_schedule_async = _awaiting(api_calls.delete_schedule)
    timezones = _blocking(api_calls.timezones)
    timezones_async = _awaiting(api_calls.timezones)

    # -- batches: sent again, with their key, while the API cannot be reached or fails -----

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
        call = api_calls.batch_trigger(task_id, items, idempotency_key=idempotency_key)
        tries = 0
        while call.body["items"]:
            tries += 1
            try:
                return self._transport.send(call)
            except (PodtaskConnectionError, PodtaskApiError) as exc:
                time.sleep(batch_pause(tries, exc))
        return []

    async def batch_trigger_async(
        self, task_id: str, items: Iterable[Any], *, idempotency_key: str | None = None
    ) -> list[RunHandle]:
        call = api_calls.batch_trigger(task_id, items, idempotency_key=idempotency_key)
        if not call.body["items"]:
            return []
        for tries in range(1, BATCH_TRIES + 1):
            try:
                return await self._loop_transport.send(call)
            except (PodtaskConnectionError, PodtaskApiError) as exc:
                await asyncio.sleep(batch_pause(tries, exc))
        raise AssertionError("batch_pause raises at the last try")

    # -- waits: polls with a gentle backoff, riding out an API that is away a moment --------

    def _poll(self, run_id: str) -> dict[str, Any] | None:
        """The run, or None when the API could not say right now."""
        try:
            return self.get_run(run_id)
        except (PodtaskConnectionError, PodtaskApiError) as exc:
            if is_passing_trouble(exc):
                return None
            raise

    async def _poll_async(self, run_id: str, gate: asyncio.Semaphore) -> dict[str, Any] | None:
        async with gate:
            try:
                return await self.get_run_async(run_id)
            except (PodtaskConnectionError, PodtaskApiError) as exc:
                if not is_passing_trouble(exc):
                    raise
        return None

    def slot_released(
        self, *, runs: Sequence[str] = (), until: datetime | None = None
    ) -> AbstractContextManager[None]:
        """Inside a task, the block is a wait of its attempt (for `runs`, or `until` a time):
        its run gives its queue slot back meanwhile, and takes one again before the block is
        left. Elsewhere it does nothing. The waits of this client and of `podtask.wait` use it.
        """
        return released_slot(self.config, self._transport.send, runs=runs, until=until)

    def slot_released_async(
        self, *, runs: Sequence[str] = (), until: datetime | None = None
    ) -> AbstractAsyncContextManager[None]:
        return released_slot_async(self.config, self._transport.send, runs=runs, until=until)

    def _poll_round(self, waiting: RunWait, pause: float) -> None:
        time.sleep(pause)
        for run_id in waiting.pending():
            waiting.seen(run_id, self._poll(run_id))

    def wait_for_runs(
        self, run_ids: Sequence[str], *, timeout: float | None = None
    ) -> list[RunResult]:
        """Wait until every run is in a final status; their results, in the order given.

        Inside a task, its run holds no slot of its queue while it waits (once it has seen
        that some of the runs have not finished), and takes one again before it returns."""
        waiting = RunWait(run_ids, timeout)
        rounds = waiting.rounds()
        self._poll_round(waiting, next(rounds))
        if waiting.pending():
            with self.slot_released(runs=waiting.pending()):
                for pause in rounds:
                    self._poll_round(waiting, pause)
        return waiting.results()

    async def _poll_round_async(
        self, waiting: RunWait, pause: float, gate: asyncio.Semaphore
    ) -> None:
        await asyncio.sleep(pause)
        pending = waiting.pending()
        views = await asyncio.gather(*(self._poll_async(run_id, gate) for run_id in pending))
        for run_id, view in zip(pending, views, strict=True):
            waiting.seen(run_id, view)

    async def wait_for_runs_async(
        self, run_ids: Sequence[str], *, timeout: float | None = None
    ) -> list[RunResult]:
        waiting, gate = RunWait(run_ids, timeout), asyncio.Semaphore(CONCURRENT_POLLS)
        rounds = waiting.rounds()
        await self._poll_round_async(waiting, next(rounds), gate)
        if waiting.pending():
            async with self.slot_released_async(runs=waiting.pending()):
                for pause in rounds:
                    await self._poll_round_async(waiting, pause, gate)
        return waiting.results()

    def wait_for_run(self, run_id: str, *, timeout: float | None = None) -> RunResult:
        """Wait until the run is in a final status; its result."""
        return self.wait_for_runs([run_id], timeout=timeout)[0]

    async def wait_for_run_async(self, run_id: str, *, timeout: float | None = None) -> RunResult:
        return (await self.wait_for_runs_async([run_id], timeout=timeout))[0]

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

    # -- logs: iterators (the pages of lists: `PagedReads`) ------------------------------------

    def run_logs(
        self, run_id: str, *, attempt: int | None = None, follow: bool = False
    ) -> Iterator[str]:
        """The log of an attempt of the run (the latest by default) as text, in pieces.

        With `follow`, the pieces come as the task writes them, until its pod ends. Raises
        `PodtaskApiError` (404) when the run, the attempt or its pod is gone: finished pods
        are deleted after the operator's pod retention.
        """
        call = api_calls.run_logs(run_id, attempt=attempt, follow=follow)
        return self._transport.stream_text(call)

    def run_logs_async(
        self, run_id: str, *, attempt: int | None = None, follow: bool = False
    ) -> AsyncIterator[str]:
        call = api_calls.run_logs(run_id, attempt=attempt, follow=follow)
        return self._loop_transport.stream_text(call)

    # -- realtime: the API's event streams, reconnected when a connection drops ---------------

    def subscribe_to_run(self, run_id: str) -> Iterator[dict[str, Any]]:
        """The run as it changes, each state as `get_run` shows it: its current state, then
        every change, until (and with) its final status."""
        return follow(self._transport.stream_text, one_run(run_id))

    def subscribe_to_run_async(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        return follow_async(self._loop_transport.stream_text, one_run(run_id))

    def subscribe_to_runs(self, **filters: Unpack[RunFilters]) -> Iterator[dict[str, Any]]:
        """Each change of the runs that pass the filters (as `list_runs`), as it happens,
        each run as `get_run` shows it; for ever."""
        return follow(self._transport.stream_text, run_list(**filters))

    def subscribe_to_runs_async(
        self, **filters: Unpack[RunFilters]
    ) -> AsyncIterator[dict[str, Any]]:
        return follow_async(self._loop_transport.stream_text, run_list(**filters))


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


def _on_default_client(method: Callable[Concatenate[PodtaskClient, P], R]) -> Callable[P, R]:
    """`method` as a function of the module: called on `default_client()` at each call."""

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return method(default_client(), *args, **kwargs)

    described: Callable[P, R] = described_as(call, method, method.__name__, as_method=False)
    return described


trigger = _on_default_client(PodtaskClient.trigger)
trigger_async = _on_default_client(PodtaskClient.trigger_async)
trigger_and_wait = _on_default_client(PodtaskClient.trigger_and_wait)
trigger_and_wait_async = _on_default_client(PodtaskClient.trigger_and_wait_async)
batch_trigger = _on_default_client(PodtaskClient.batch_trigger)
batch_trigger_async = _on_default_client(PodtaskClient.batch_trigger_async)
batch_trigger_and_wait = _on_default_client(PodtaskClient.batch_trigger_and_wait)
batch_trigger_and_wait_async = _on_default_client(PodtaskClient.batch_trigger_and_wait_async)
get_run = _on_default_client(PodtaskClient.get_run)
get_run_async = _on_default_client(PodtaskClient.get_run_async)
wait_for_run = _on_default_client(PodtaskClient.wait_for_run)
wait_for_run_async = _on_default_client(PodtaskClient.wait_for_run_async)
cancel_run = _on_default_client(PodtaskClient.cancel_run)
cancel_run_async = _on_default_client(PodtaskClient.cancel_run_async)
replay_run = _on_default_client(PodtaskClient.replay_run)
replay_run_async = _on_default_client(PodtaskClient.replay_run_async)
reschedule_run = _on_default_client(PodtaskClient.reschedule_run)
reschedule_run_async = _on_default_client(PodtaskClient.reschedule_run_async)
list_runs = _on_default_client(PodtaskClient.list_runs)
list_runs_async = _on_default_client(PodtaskClient.list_runs_async)
iter_runs = _on_default_client(PodtaskClient.iter_runs)
iter_runs_async = _on_default_client(PodtaskClient.iter_runs_async)
run_logs = _on_default_client(PodtaskClient.run_logs)
run_logs_async = _on_default_client(PodtaskClient.run_logs_async)
subscribe_to_run = _on_default_client(PodtaskClient.subscribe_to_run)
subscribe_to_run_async = _on_default_client(PodtaskClient.subscribe_to_run_async)
subscribe_to_runs = _on_default_client(PodtaskClient.subscribe_to_runs)
subscribe_to_runs_async = _on_default_client(PodtaskClient.subscribe_to_runs_async)
create_deployment = _on_default_client(PodtaskClient.create_deployment)
create_deployment_async = _on_default_client(PodtaskClient.create_deployment_async)
list_deployments = _on_default_client(PodtaskClient.list_deployments)
list_deployments_async = _on_default_client(PodtaskClient.list_deployments_async)
list_tasks = _on_default_client(PodtaskClient.list_tasks)
list_tasks_async = _on_default_client(PodtaskClient.list_tasks_async)
list_queues = _on_default_client(PodtaskClient.list_queues)
list_queues_async = _on_default_client(PodtaskClient.list_queues_async)
get_queue = _on_default_client(PodtaskClient.get_queue)
get_queue_async = _on_default_client(PodtaskClient.get_queue_async)
pause_queue = _on_default_client(PodtaskClient.pause_queue)
pause_queue_async = _on_default_client(PodtaskClient.pause_queue_async)
resume_queue = _on_default_client(PodtaskClient.resume_queue)
resume_queue_async = _on_default_client(PodtaskClient.resume_queue_async)
set_queue_concurrency = _on_default_client(PodtaskClient.set_queue_concurrency)
set_queue_concurrency_async = _on_default_client(PodtaskClient.set_queue_concurrency_async)
create_schedule = _on_default_client(PodtaskClient.create_schedule)
create_schedule_async = _on_default_client(PodtaskClient.create_schedule_async)
list_schedules = _on_default_client(PodtaskClient.list_schedules)
list_schedules_async = _on_default_client(PodtaskClient.list_schedules_async)
get_schedule = _on_default_client(PodtaskClient.get_schedule)
get_schedule_async = _on_default_client(PodtaskClient.get_schedule_async)
update_schedule = _on_default_client(PodtaskClient.update_schedule)
update_schedule_async = _on_default_client(PodtaskClient.update_schedule_async)
activate_schedule = _on_default_client(PodtaskClient.activate_schedule)
activate_schedule_async = _on_default_client(PodtaskClient.activate_schedule_async)
deactivate_schedule = _on_default_client(PodtaskClient.deactivate_schedule)
deactivate_schedule_async = _on_default_client(PodtaskClient.deactivate_schedule_async)
delete_schedule = _on_default_client(PodtaskClient.delete_schedule)
delete_schedule_async = _on_default_client(PodtaskClient.delete_schedule_async)
timezones = _on_default_client(PodtaskClient.timezones)
timezones_async = _on_default_client(PodtaskClient.timezones_async)


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
