"""Realtime end to end, on both clusters: `subscribe_to_run` yields every status a run goes
through, from its trigger to its end, a retry included, blocking and async; and
`subscribe_to_runs(task=...)` sees new runs appear and change. The statuses are checked
against a watch of the cluster made from outside the stack."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from podtask.client import PodtaskClient
from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import FINAL, TASK_MODULES, wait_until
from tests.reliability.faults import PhaseWatch

QUEUE = "realtime"
# How a run retried once ends (before: Pending, and Queued when the operator queues it first).
RETRIED = ["Executing", "WaitingToRetry", "Executing", "Completed"]


@pytest.fixture(scope="module")
def composed(
    tmp_path_factory: pytest.TempPathFactory, cluster_kind: str
) -> Iterator[ComposedStack]:
    state = tmp_path_factory.mktemp("realtime")
    modules = [str(TASK_MODULES / "realtime.py")]
    with ComposedStack(state, modules, cluster_kind=cluster_kind) as stack:
        yield stack


@pytest.fixture
def api(composed: ComposedStack) -> Iterator[PodtaskClient]:
    with PodtaskClient(api_url=composed.api_url, api_key=composed.api_key) as api_client:
        yield api_client
        api_client.resume_queue(QUEUE)  # as the next test expects it, whatever this one did


@pytest.fixture
def phases(composed: ComposedStack) -> Iterator[PhaseWatch]:
    with PhaseWatch(str(composed.cluster.kubeconfig_path)) as watch:
        yield watch


def collapsed(statuses: list[str]) -> list[str]:
    """The statuses, each run of equal ones once, without `Pending` (no phase yet)."""
    found: list[str] = []
    for status in statuses:
        if status != "Pending" and (not found or found[-1] != status):
            found.append(status)
    return found


def as_the_cluster_saw_it(watch: PhaseWatch, run_id: str, yielded: list[str]) -> None:
    """What was yielded is every phase the cluster's watch saw the run go through."""
    assert watch.relists == 0  # the cluster's watch itself missed nothing
    seen = wait_until(lambda: (p := watch.phases(run_id)) and p[-1] in FINAL and p, timeout=60)
    assert collapsed(yielded) == seen, (yielded, seen)


def test_subscribe_to_run_yields_every_status_to_the_end(
    api: PodtaskClient, phases: PhaseWatch
) -> None:
    api.pause_queue(QUEUE)  # the run waits, Queued, until it is followed
    run_id = api.trigger("retried-once").id
    runs = api.subscribe_to_run(run_id)
    yielded = [next(runs)]  # the current state first
    assert yielded[0]["status"] in ("Pending", "Queued")
    api.resume_queue(QUEUE)
    yielded.extend(runs)  # to the end, and no further
    statuses = [run["status"] for run in yielded]
    assert collapsed(statuses)[-4:] == RETRIED
    assert yielded[-1] == api.get_run(run_id)
    assert yielded[-1]["output"] == {"attempt": 2}
    as_the_cluster_saw_it(phases, run_id, statuses)


def test_subscribe_to_run_async_yields_every_status_to_the_end(
    api: PodtaskClient, phases: PhaseWatch
) -> None:
    async def follow() -> list[dict[str, Any]]:
        await api.pause_queue_async(QUEUE)
        run_id = (await api.trigger_async("retried-once")).id
        yielded = []
        async for run in api.subscribe_to_run_async(run_id):
            yielded.append(run)
            if len(yielded) == 1:
                await api.resume_queue_async(QUEUE)
        await api.aclose()
        return yielded

    yielded = asyncio.run(follow())
    statuses = [run["status"] for run in yielded]
    assert collapsed(statuses)[-4:] == RETRIED
    as_the_cluster_saw_it(phases, yielded[-1]["id"], statuses)


def test_subscribe_to_runs_sees_new_runs_appear_and_change(api: PodtaskClient) -> None:
    yielded: list[dict[str, Any]] = []
    done = threading.Event()

    def read() -> None:
        for run in api.subscribe_to_runs(task="realtime-quick"):
            if done.is_set():
                return  # leaving the loop closes the stream
            yielded.append(run)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # Once a run is seen the subscription is in place (until then, a run may come too early).
    wait_until(
        lambda: yielded or (api.trigger("realtime-quick") and False), timeout=120, interval=1
    )
    api.trigger("retried-once")  # another task: not yielded
    run_id = api.trigger("realtime-quick", {"echo": "seen"}).id

    def statuses() -> list[str]:
        return [run["status"] for run in list(yielded) if run["id"] == run_id]

    wait_until(lambda: "Completed" in statuses(), timeout=120)
    assert statuses()[0] in ("Pending", "Queued")  # it appeared, then changed
    assert collapsed(statuses())[-2:] == ["Executing", "Completed"]
    assert {run["taskId"] for run in yielded} == {"realtime-quick"}
    completed = [run for run in yielded if run["id"] == run_id][-1]
    assert completed["output"] == {"echo": "seen"}
    done.set()
    api.trigger("realtime-quick")  # the reader sees one more run, and stops
    reader.join(timeout=60)
