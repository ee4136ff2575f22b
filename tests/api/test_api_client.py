"""`podtask.client` against the real API, served by uvicorn over the embedded cluster.

The test plays the operator only where the client waits: it writes the run's final status
the way the operator does. The whole path with the real operator is the e2e tests'.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from api_fixtures import API_KEY, attempt_token, free_port, served, settings_for
from pydantic import BaseModel

from podtask import client as podtask_client
from podtask._authoring.run_results import RunFailedError
from podtask._authoring.trigger_options import BatchItem
from podtask._contract.resources import RunPhase
from podtask.client import (
    SAME_PAYLOAD,
    PodtaskApiError,
    PodtaskClient,
    PodtaskConnectionError,
    RunWaitTimeoutError,
    replay_body,
    reschedule_body,
    tasks,
)
from podtask_api.app import create_app
from tests.embedded_kube import EmbeddedKube, KubeNamespace


@dataclass
class Api:
    url: str
    namespace: KubeNamespace

    def client(self, **settings: Any) -> PodtaskClient:
        return PodtaskClient(api_url=self.url, **{"api_key": API_KEY, **settings})


@pytest.fixture
def api(embedded_kube: EmbeddedKube, namespace: KubeNamespace) -> Iterator[Api]:
    with served(create_app(settings_for(embedded_kube, namespace))) as url:
        yield Api(url, namespace)


def new_runs(namespace: KubeNamespace, known: set[str], count: int = 1) -> list[str]:
    """Wait for `count` runs not in `known` to appear; their names."""
    deadline = time.monotonic() + 60
    while True:
        fresh = sorted(set(namespace.run_names()) - known)
        if len(fresh) >= count:
            return fresh
        assert time.monotonic() < deadline, f"{count} run(s) were not created"
        time.sleep(0.02)


def finish(namespace: KubeNamespace, run_id: str, phase: str, **fields: Any) -> None:
    """What the operator writes when a run ends."""
    namespace.set_run_status(
        run_id, {"phase": phase, "attempt": 1, "finishedAt": "2024-05-01T12:00:00Z", **fields}
    )


class Greeting(BaseModel):
    name: str
    times: int = 1


def test_trigger_sends_payload_and_options_and_returns_a_handle(api: Api) -> None:
    with api.client() as client:
        handle = client.trigger(
            "hello-world",
            Greeting(name="Ada"),
            tags="vip",
            metadata={"user": 7},
            max_attempts=2,
            ttl=timedelta(minutes=5),
            idempotency_key="greet-ada",
            concurrency_key="user-7",
            priority=3,
            machine="micro",
        )
        assert handle.task_id == "hello-world"
        assert not handle.is_cached
        spec = api.namespace.run(handle.id)["spec"]
        assert spec["payload"] == {"name": "Ada", "times": 1}
        assert spec["tags"] == ["vip"]
        assert spec["metadata"] == {"user": 7}
        assert spec["retry"]["maxAttempts"] == 2
        assert spec["ttlSeconds"] == 300
        assert (spec["concurrencyKey"], spec["priority"], spec["machine"]) == ("user-7", 3, "micro")
        again = client.trigger("hello-world", Greeting(name="Ada"), idempotency_key="greet-ada")
        assert (again.id, again.is_cached) == (handle.id, True)


def test_trigger_and_wait_returns_the_output(api: Api) -> None:
    with api.client() as client, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.trigger_and_wait, "hello-world", {"name": "Ada"})
        [run_id] = new_runs(api.namespace, set())
        finish(api.namespace, run_id, "Completed", output={"message": "hello Ada"})
        result = waiting.result(timeout=10)
    assert result.ok
    assert (result.id, result.task_id, result.status) == (run_id, "hello-world", "Completed")
    assert result.unwrap() == {"message": "hello Ada"}


def test_trigger_and_wait_of_a_failed_run_unwraps_to_its_error(api: Api) -> None:
    error = {"type": "ValueError", "message": "no name", "stack": "Traceback …"}
    with api.client() as client, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.trigger_and_wait, "hello-world", {})
        [run_id] = new_runs(api.namespace, set())
        finish(api.namespace, run_id, "Failed", error=error)
        result = waiting.result(timeout=10)
    assert not result.ok
    assert result.status is RunPhase.FAILED
    assert result.error is not None and result.error.message == "no name"
    with pytest.raises(RunFailedError, match="ended as Failed: ValueError: no name"):
        result.unwrap()


def test_a_wait_gives_up_at_its_timeout(api: Api) -> None:
    # Nothing finishes the run: only the wait's own timeout can end it (the test's deadline,
    # a minute, is only there so that a wait that never gives up fails rather than hangs).
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            client.trigger_and_wait("hello-world", {}, timeout=0.5)
        except BaseException as error:
            raised.append(error)

    with api.client() as client:
        waiting = threading.Thread(target=wait, daemon=True)
        waiting.start()
        waiting.join(60)
        assert not waiting.is_alive(), "the wait went on past its timeout"
    [timed_out] = raised
    assert isinstance(timed_out, RunWaitTimeoutError), timed_out
    assert timed_out.run_ids == api.namespace.run_names()
    [run_id] = timed_out.run_ids
    assert "phase" not in (api.namespace.run(run_id).get("status") or {})  # still not ended


def test_batch_trigger_of_a_thousand_items_is_one_request(api: Api) -> None:
    requests: list[httpx.Request] = []
    with httpx.Client(event_hooks={"request": [requests.append]}, timeout=60) as http:
        client = api.client(http=http)
        items: list[Any] = [{"n": n} for n in range(1000)]
        items[10] = {"payload": {"n": 10}, "options": {"tags": ["tenth"]}}
        items[20] = BatchItem({"n": 20}, {"idempotency_key": "twentieth"})
        handles = client.batch_trigger("hello-world", items)
    assert [(r.method, r.url.path) for r in requests] == [("POST", "/api/v1/tasks/batch")]
    assert len(handles) == 1000
    assert sorted(h.id for h in handles) == api.namespace.run_names()
    assert api.namespace.run(handles[10].id)["spec"]["tags"] == ["tenth"]
    assert api.namespace.run(handles[20].id)["spec"]["idempotencyKey"] == "twentieth"
    assert api.namespace.run(handles[999].id)["spec"]["payload"] == {"n": 999}


def test_a_batch_with_one_bad_item_creates_no_run_and_names_the_item(api: Api) -> None:
    items: list[Any] = [{"n": n} for n in range(50)]
    items[42] = {"payload": {"n": 42}, "options": {"machine": "giant"}}
    with api.client() as client, pytest.raises(PodtaskApiError) as refused:
        client.batch_trigger("hello-world", items)
    assert (refused.value.status, refused.value.code) == (422, "invalid_request")
    assert "items.42.options.machine" in refused.value.message
    assert api.namespace.run_names() == []


def test_batch_trigger_and_wait_returns_results_in_item_order(api: Api) -> None:
    with api.client() as client, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.batch_trigger_and_wait, "hello-world", [1, 2, 3])
        runs = new_runs(api.namespace, set(), 3)
        for run_id in runs:
            payload = api.namespace.run(run_id)["spec"]["payload"]
            if payload == 2:
                finish(api.namespace, run_id, "Crashed", error={"type": "OOM", "message": "oom"})
            else:
                finish(api.namespace, run_id, "Completed", output=payload * 10)
        results = waiting.result(timeout=10)
    assert [r.status for r in results] == ["Completed", "Crashed", "Completed"]
    assert [r.output for r in results] == [10, None, 30]


def test_the_async_twins(api: Api) -> None:
    async def operator_finishes(count: int, known: set[str]) -> list[str]:
        runs = await asyncio.to_thread(new_runs, api.namespace, known, count)
        for run_id in runs:
            payload = (await asyncio.to_thread(api.namespace.run, run_id))["spec"]["payload"]
            await asyncio.to_thread(finish, api.namespace, run_id, "Completed", output=payload)
        return runs

    async def scenario(client: PodtaskClient) -> None:
        handle = await client.trigger_async("hello-world", "one")
        assert api.namespace.run(handle.id)["spec"]["payload"] == "one"
        handles = await client.batch_trigger_async("hello-world", ["two", "three"])
        assert len(handles) == 2
        known = set(api.namespace.run_names())
        result, runs = await asyncio.gather(
            client.trigger_and_wait_async("hello-world", "four"),
            operator_finishes(1, known),
        )
        assert result.unwrap() == "four" and runs == [result.id]
        known = set(api.namespace.run_names())
        results, _ = await asyncio.gather(
            client.batch_trigger_and_wait_async("hello-world", ["five", "six"]),
            operator_finishes(2, known),
        )
        assert [r.unwrap() for r in results] == ["five", "six"]
        assert (await client.get_run_async(result.id))["output"] == "four"

    async def closing(client: PodtaskClient) -> None:
        async with client:
            await scenario(client)

    client = api.client()
    asyncio.run(closing(client))
    # Another event loop on the same client: it opens connections of its own.
    asyncio.run(closing(client))


def test_api_errors_carry_status_and_code(api: Api) -> None:
    with api.client() as client:
        with pytest.raises(PodtaskApiError) as unknown:
            client.trigger("no-such-task", {})
        assert (unknown.value.status, unknown.value.code) == (404, "task_not_found")
        with pytest.raises(PodtaskApiError) as missing:
            client.get_run("run-missing")
        assert (missing.value.status, missing.value.code) == (404, "run_not_found")
    with api.client(api_key="wrong") as client, pytest.raises(PodtaskApiError) as unauthorized:
        client.trigger("hello-world", {})
    assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthorized")


@pytest.mark.component
def test_an_unreachable_api_is_a_connection_error() -> None:
    with (
        PodtaskClient(api_url=f"http://127.0.0.1:{free_port()}", api_key="k") as client,
        pytest.raises(PodtaskConnectionError, match="cannot reach the podtask API"),
    ):
        client.trigger("hello-world", {})


@pytest.fixture
def inside_a_task(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The environment of a task pod, as the operator sets it: no API key, an attempt
    token for a run; the module's client starts from it afresh. Yields the run id."""
    with api.client() as client:
        parent = client.trigger("hello-world", "parent").id
    monkeypatch.setattr(podtask_client, "_default", None)
    monkeypatch.delenv("PODTASK_API_KEY", raising=False)
    monkeypatch.setenv("PODTASK_API_URL", api.url)
    monkeypatch.setenv("PODTASK_ATTEMPT_TOKEN", attempt_token(parent))
    yield parent
    podtask_client.default_client().close()


def test_inside_a_task_triggered_runs_are_children_of_its_run(api: Api, inside_a_task: str) -> None:
    child = tasks.trigger("hello-world", "child")
    assert api.namespace.run(child.id)["spec"]["parentRunId"] == inside_a_task
    batch = tasks.batch_trigger("hello-world", ["a", "b"])
    assert {api.namespace.run(h.id)["spec"]["parentRunId"] for h in batch} == {inside_a_task}

    finish(api.namespace, child.id, "Completed", output="done")
    assert podtask_client.wait_for_run(child.id).unwrap() == "done"
    assert podtask_client.get_run(child.id)["parentRunId"] == inside_a_task


def test_inside_a_task_other_runs_are_forbidden(api: Api, inside_a_task: str) -> None:
    with api.client() as client:
        stranger = client.trigger("hello-world", "stranger").id
    with pytest.raises(PodtaskApiError) as forbidden:
        podtask_client.get_run(stranger)
    assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")


def test_an_expired_attempt_token_is_refused(api: Api, inside_a_task: str) -> None:
    expired = attempt_token(inside_a_task, ttl=-5)
    with api.client(api_key=None, attempt_token=expired) as client:
        assert client.config.api_key is None
        with pytest.raises(PodtaskApiError, match="expired") as refused:
            client.trigger("hello-world", {})
    assert refused.value.status == 401


# -- managing runs ------------------------------------------------------------------------------


def _delayed_run(api: Api, client: PodtaskClient) -> str:
    """A run that the operator holds as Delayed."""
    run_id = client.trigger("hello-world", "later", delay=3600).id
    api.namespace.set_run_status(run_id, {"phase": "Delayed"})
    return run_id


def test_cancel_replay_and_reschedule(api: Api) -> None:
    with api.client() as client:
        old = client.trigger("hello-world", Greeting(name="Ada"), tags="vip").id
        api.namespace.set_run_status(old, {"phase": "Executing", "attempt": 1})

        view = client.cancel_run(old)
        assert (view["id"], view["status"]) == (old, "Executing")
        assert view["cancelRequestedAt"] == api.namespace.run(old)["spec"]["cancelRequestedAt"]
        assert client.cancel_run(old)["cancelRequestedAt"] == view["cancelRequestedAt"]

        replay = client.replay_run(old)
        assert (replay.task_id, replay.is_cached) == ("hello-world", False)
        spec = api.namespace.run(replay.id)["spec"]
        assert (spec["replayOf"], spec["payload"], spec["tags"]) == (
            old,
            {"name": "Ada", "times": 1},
            ["vip"],
        )
        assert "cancelRequestedAt" not in spec
        with_model = client.replay_run(old, Greeting(name="Bob", times=2))
        assert api.namespace.run(with_model.id)["spec"]["payload"] == {"name": "Bob", "times": 2}
        with_null = client.replay_run(old, payload=None)
        assert api.namespace.run(with_null.id)["spec"].get("payload") is None

        finish(api.namespace, old, "Canceled")
        with pytest.raises(PodtaskApiError) as finished:
            client.cancel_run(old)
        assert (finished.value.status, finished.value.code) == (409, "run_finished")

        delayed = _delayed_run(api, client)
        before = datetime.now(UTC)
        client.reschedule_run(delayed, timedelta(minutes=5))
        until = datetime.fromisoformat(api.namespace.run(delayed)["spec"]["delayUntil"])
        assert before + timedelta(seconds=299) <= until <= datetime.now(UTC) + timedelta(minutes=5)
        at = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert client.reschedule_run(delayed, at)["status"] == "Delayed"
        assert datetime.fromisoformat(api.namespace.run(delayed)["spec"]["delayUntil"]) == at
        with pytest.raises(PodtaskApiError) as not_delayed:
            client.reschedule_run(old, 10)
        assert (not_delayed.value.status, not_delayed.value.code) == (409, "run_not_delayed")

        for action in (client.cancel_run, client.replay_run):
            with pytest.raises(PodtaskApiError) as missing:
                action("run-missing")
            assert (missing.value.status, missing.value.code) == (404, "run_not_found")


def test_the_run_actions_async_twins_and_module_functions(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(client: PodtaskClient) -> None:
        async with client:
            run_id = (await client.trigger_async("hello-world", "one")).id
            assert "cancelRequestedAt" in await client.cancel_run_async(run_id)
            replay = await client.replay_run_async(run_id, "two")
            assert api.namespace.run(replay.id)["spec"]["payload"] == "two"
            delayed = await asyncio.to_thread(_delayed_run, api, client)
            view = await client.reschedule_run_async(delayed, 30)
            assert view["status"] == "Delayed"

    asyncio.run(scenario(api.client()))

    monkeypatch.setattr(podtask_client, "_default", None)
    monkeypatch.setenv("PODTASK_API_URL", api.url)
    monkeypatch.setenv("PODTASK_API_KEY", API_KEY)
    try:
        run_id = tasks.trigger("hello-world", "three").id
        assert podtask_client.cancel_run(run_id)["id"] == run_id
        replay = podtask_client.replay_run(run_id)
        assert api.namespace.run(replay.id)["spec"]["replayOf"] == run_id
        delayed = _delayed_run(api, podtask_client.default_client())
        assert podtask_client.reschedule_run(delayed, 1)["id"] == delayed

        async def module_twins() -> None:
            await podtask_client.cancel_run_async(replay.id)
            again = await podtask_client.replay_run_async(replay.id, {"n": 4})
            assert api.namespace.run(again.id)["spec"]["payload"] == {"n": 4}
            await podtask_client.reschedule_run_async(delayed, 2)
            await podtask_client.default_client().aclose()

        asyncio.run(module_twins())
    finally:
        podtask_client.default_client().close()


def test_the_request_bodies_of_the_run_actions() -> None:
    assert replay_body(SAME_PAYLOAD) == {}
    assert replay_body(None) == {"payload": None}
    assert replay_body(Greeting(name="A")) == {"payload": {"name": "A", "times": 1}}
    assert reschedule_body(timedelta(seconds=1.5)) == {"delay": 2}
    in_cest = datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert reschedule_body(in_cest) == {"delay": "2031-01-02T01:04:05Z"}
    with pytest.raises(TypeError, match="needs a delay"):
        reschedule_body(None)  # type: ignore[arg-type]
