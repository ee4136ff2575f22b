"""`podtask.client`'s subscriptions against the real API, served by uvicorn over the embedded
cluster: `subscribe_to_run` (blocking and async, and the module's function) from the run's
current state to its end, through an API restarted under it; `subscribe_to_runs` with
filters; what they raise."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from api_fixtures import API_KEY, free_port, served, settings_for
from kubernetes import client

from podtask import client as podtask_client
from podtask._contract.wire import GROUP, VERSION
from podtask.client import PodtaskApiError, PodtaskClient
from podtask_api.app import create_app
from tests.e2e.conftest import wait_until
from tests.embedded_kube import EmbeddedKube, KubeNamespace


@pytest.fixture
def api(embedded_kube: EmbeddedKube, namespace: KubeNamespace) -> Iterator[PodtaskClient]:
    app = create_app(settings_for(embedded_kube, namespace))
    with served(app) as url, PodtaskClient(api_url=url, api_key=API_KEY) as api_client:
        yield api_client


class Following:
    """A subscription read in a thread: what it yielded, and how it ended."""

    def __init__(self, runs: Iterator[dict[str, Any]]) -> None:
        self.seen: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.done = threading.Event()  # set, the next run yielded closes the subscription
        self._runs = runs
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for run in self._runs:
                if self.done.is_set():
                    return
                self.seen.append(run)
        except BaseException as exc:  # the test reads it
            self.error = exc

    def statuses(self) -> list[str]:
        return [run["status"] for run in self.seen]

    def wait_for(self, status: str) -> None:
        wait_until(lambda: status in self.statuses() or self.error, timeout=60)
        assert self.error is None, self.error

    def ended(self) -> list[str]:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), self.statuses()
        assert self.error is None, self.error
        return self.statuses()


def test_subscribe_to_run_from_its_current_state_to_its_end(
    api: PodtaskClient, namespace: KubeNamespace
) -> None:
    run_id = api.trigger("hello-world").id
    following = Following(api.subscribe_to_run(run_id))
    following.wait_for("Pending")
    for phase in ("Queued", "Executing", "WaitingToRetry", "Executing"):
        namespace.set_run_status(run_id, {"phase": phase, "attempt": 1})
        following.wait_for(phase)  # the same phase again is seen as a change of attempt
        if phase == "WaitingToRetry":
            namespace.set_run_status(run_id, {"phase": "Queued", "attempt": 2})
    namespace.set_run_status(run_id, {"phase": "Completed", "output": {"ok": True}})
    assert following.ended() == [
        "Pending",
        "Queued",
        "Executing",
        "WaitingToRetry",
        "Queued",
        "Executing",
        "Completed",
    ]
    assert following.seen[-1] == api.get_run(run_id)  # the objects `get_run` returns


def test_subscribe_to_run_async(api: PodtaskClient, namespace: KubeNamespace) -> None:
    async def main() -> list[str]:
        run_id = (await api.trigger_async("hello-world")).id
        seen = []
        async for run in api.subscribe_to_run_async(run_id):
            seen.append(run["status"])
            following = {"Pending": "Queued", "Queued": "Executing", "Executing": "Failed"}
            if run["status"] in following:
                status = {"phase": following[run["status"]], "attempt": 1}
                await asyncio.to_thread(namespace.set_run_status, run_id, status)
        await api.aclose()
        return seen

    assert asyncio.run(main()) == ["Pending", "Queued", "Executing", "Failed"]


def test_the_module_functions_and_what_they_raise(
    api: PodtaskClient, namespace: KubeNamespace
) -> None:
    podtask_client.configure(api_url=api.config.api_url, api_key=API_KEY)
    run_id = api.trigger("hello-world").id
    namespace.set_run_status(run_id, {"phase": "Canceled"})
    assert [r["status"] for r in podtask_client.subscribe_to_run(run_id)] == ["Canceled"]
    with pytest.raises(PodtaskApiError) as unknown:
        next(podtask_client.subscribe_to_run("run-unknown"))
    assert (unknown.value.status, unknown.value.code) == (404, "run_not_found")
    with pytest.raises(PodtaskApiError) as refused:
        next(podtask_client.subscribe_to_runs(status="Nope"))
    assert refused.value.status == 422

    deleted_id = api.trigger("hello-world").id
    following = Following(api.subscribe_to_run(deleted_id))
    following.wait_for("Pending")
    client.CustomObjectsApi(namespace._objects.api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace.name, "taskruns", deleted_id
    )
    following.thread.join(timeout=60)
    assert isinstance(following.error, PodtaskApiError) and following.error.status == 404


def test_subscribe_to_runs_sees_runs_appear_and_change(
    api: PodtaskClient, namespace: KubeNamespace
) -> None:
    following = Following(api.subscribe_to_runs(task="hello-world", tag="watched"))
    # Until a run is seen, the subscription may not be in place yet: trigger until one is.
    wait_until(
        lambda: following.seen or (api.trigger("hello-world", tags=["watched"]) and False),
        timeout=60,
        interval=0.5,
    )
    api.trigger("hello-world")  # not tagged: not seen
    run_id = api.trigger("hello-world", tags=["watched", "x"]).id
    namespace.set_run_status(run_id, {"phase": "Queued"})
    namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1})
    wait_until(lambda: ("Executing", run_id) in [(r["status"], r["id"]) for r in following.seen])
    mine = [r["status"] for r in following.seen if r["id"] == run_id]
    assert mine == ["Pending", "Queued", "Executing"]
    assert all("watched" in r["tags"] for r in following.seen)
    following.done.set()
    api.trigger("hello-world", tags=["watched"])
    assert following.ended()


def test_a_subscription_rides_out_an_api_restart(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    port = free_port()
    settings = settings_for(embedded_kube, namespace)
    with served(create_app(settings), port) as url:
        api = PodtaskClient(api_url=url, api_key=API_KEY)
        run_id = api.trigger("hello-world").id
        following = Following(api.subscribe_to_run(run_id))
        following.wait_for("Pending")
        namespace.set_run_status(run_id, {"phase": "Queued"})
        following.wait_for("Queued")
    # The API is gone (its streams ended as it stopped); the subscription keeps trying.
    with served(create_app(settings), port):
        namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1})
        following.wait_for("Executing")
        namespace.set_run_status(run_id, {"phase": "Completed"})
        # Reconnected with the id of the last event, so Queued is not yielded twice.
        assert following.ended() == ["Pending", "Queued", "Executing", "Completed"]
