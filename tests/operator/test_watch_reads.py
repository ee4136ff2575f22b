"""What the reconciler reads when kopf hands it watch events: a run's event is decided on the
event's own body, a pod's event is the read of that pod, and a running pod is judged as the
pod watch last showed it; the run is read again only where a decision needs a read no older
than something else (the start of an attempt; an ended pod, for the report made before it,
unless the run's watch showed it final already).
A wake-up of its own (a timer) has no event to trust: it reads both."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from podtask_operator.cluster import RUN_PAGE
from podtask_operator.reconcile import ADMISSIONS_IN_FLIGHT, RunReconciler
from podtask_operator.settings import OperatorSettings
from tests.operator.memory_cluster import MemoryCluster
from tests.operator.test_run_reconciler import T0, Clock, _spec


@pytest.fixture
def cluster() -> MemoryCluster:
    return MemoryCluster()


@pytest.fixture
def reconciler(cluster: MemoryCluster, settings: OperatorSettings) -> RunReconciler:
    return RunReconciler(cluster, settings, clock=Clock(), random=lambda: 0)


def _event(objects: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """The object as its watch event shows it (not a read)."""
    return copy.deepcopy(objects[name])


async def _started(cluster: MemoryCluster, reconciler: RunReconciler) -> None:
    """Run `a` triggered and started, and its pod's and its status's events handled."""
    cluster.add_run("a", _spec(), T0)
    await reconciler.run_changed("a", _event(cluster.runs, "a"))
    await reconciler.pod_changed(_event(cluster.pods, "a-1"))  # the pod's ADDED event
    await reconciler.run_changed("a", _event(cluster.runs, "a"))  # its Executing status


@pytest.mark.anyio
async def test_a_run_goes_through_its_events_with_two_reads_of_it(
    cluster: MemoryCluster, reconciler: RunReconciler
) -> None:
    await _started(cluster, reconciler)
    # Admitted at once, its attempt started from a fresh read of the run, never from an event.
    assert cluster.created_pods == ["a-1"]
    assert cluster.status("a")["phase"] == "Executing"
    assert cluster.reads == ["run/a"]  # the pod's and the status's events decided as shown

    cluster.report("a", {"attempt": 1, "ok": True, "output": {"n": 1}})
    cluster.pod_ends("a-1", exit_code=0)
    await reconciler.pod_changed(_event(cluster.pods, "a-1"))
    # The pod's event is its read; the run is read after it, with the report.
    assert cluster.reads == ["run/a", "run/a"]
    status = cluster.status("a")
    assert (status["phase"], status["output"]) == ("Completed", {"n": 1})


@pytest.mark.anyio
async def test_a_run_its_watch_showed_completed_is_not_read_when_its_pod_ends(
    cluster: MemoryCluster, reconciler: RunReconciler
) -> None:
    await _started(cluster, reconciler)
    # The API completes the run with the report; the run's event comes before the pod's end.
    cluster.report_through_api("a", {"attempt": 1, "ok": True, "output": {"n": 1}}, T0)
    await reconciler.run_changed("a", _event(cluster.runs, "a"))
    assert reconciler.scheduler.counts("emails") == (1, 0)
    cluster.pod_ends("a-1", exit_code=0)
    await reconciler.pod_changed(_event(cluster.pods, "a-1"))
    # The final status the watch showed is what a read would: no read after the start's.
    assert cluster.reads == ["run/a"]
    assert cluster.events[-1] == ("a", "Normal", "Completed")
    assert reconciler.scheduler.counts("emails") == (0, 0)

    # A run whose pod ends before its final event is read, as before; its event, after,
    # keeps no copy (its pod has ended), and a later one of the same run is read again.
    cluster.add_run("b", _spec(), T0)
    await reconciler.run_changed("b", _event(cluster.runs, "b"))
    await reconciler.pod_changed(_event(cluster.pods, "b-1"))
    cluster.report_through_api("b", {"attempt": 1, "ok": True, "output": None}, T0)
    cluster.pod_ends("b-1", exit_code=0)
    cluster.reads.clear()
    await reconciler.pod_changed(_event(cluster.pods, "b-1"))
    await reconciler.run_changed("b", _event(cluster.runs, "b"))
    assert cluster.reads == ["run/b"]
    assert [e for e in cluster.events if e[0] == "b"][-1] == ("b", "Normal", "Completed")
    assert len(reconciler._final_runs) == 0


@pytest.mark.anyio
async def test_a_wake_up_reads_the_pod_not_the_watchs_copy(
    cluster: MemoryCluster, reconciler: RunReconciler
) -> None:
    await _started(cluster, reconciler)
    # The pod goes without an event reaching the operator (a watch that was down meanwhile).
    del cluster.pods["a-1"]
    await reconciler.run_changed("a", _event(cluster.runs, "a"))
    assert cluster.status("a")["phase"] == "Executing"  # the watch's copy says it runs
    cluster.reads.clear()
    await reconciler.run_changed("a")  # a timer: no event
    assert cluster.reads[:2] == ["run/a", "pod/a-1"]
    status = cluster.status("a")
    assert status["phase"] == "WaitingToRetry"
    assert status["attempts"][0]["reason"] == "PodDeleted"


@pytest.mark.anyio
async def test_a_rebuild_lists_the_runs_in_pages_and_reads_only_those_it_must_mark(
    cluster: MemoryCluster, reconciler: RunReconciler
) -> None:
    # A restart with a backlog of more than one page: most of it marked Queued already by the
    # operator before, some runs new. Limit 1: one run starts, the others wait.
    listed_pages: list[int] = []
    pages = cluster.run_pages

    async def counted(limit: int = RUN_PAGE) -> AsyncIterator[list[dict[str, Any]]]:
        async for page in pages(limit):
            listed_pages.append(len(page))
            yield page

    cluster.run_pages = counted  # type: ignore[method-assign]
    queued = [f"q{i:04d}" for i in range(RUN_PAGE + 100)]
    fresh = [f"n{i:02d}" for i in range(20)]
    for name in queued:
        cluster.add_run(name, _spec(), T0)
        cluster.runs[name]["status"] = {"phase": "Queued", "attempt": 0}
    for name in fresh:
        cluster.add_run(name, _spec(), T0)

    await reconciler.rebuild()

    assert listed_pages == [RUN_PAGE, 120]
    assert len(cluster.created_pods) == 1
    # The run started was read fresh; each new run once, to say why it waits; no run the
    # list showed Queued was read again.
    started = cluster.created_pods[0].rsplit("-", 1)[0]
    assert sorted(cluster.reads) == sorted({f"run/{n}" for n in fresh} | {f"run/{started}"})
    for name in fresh:
        if name != started:
            assert cluster.status(name)["phase"] == "Queued"
    assert reconciler.scheduler.counts("emails") == (1, len(queued) + len(fresh) - 1)


@pytest.mark.anyio
async def test_an_ended_pod_does_not_wait_behind_an_admission_pass_under_way(
    cluster: MemoryCluster, reconciler: RunReconciler
) -> None:
    # A pass that keeps taking free slots holds the bucket's lock while its starts are under
    # way (here: all of them held at their fresh read of the run). The admission an ended pod
    # asks for meanwhile returns at once instead of holding the pod's watch event until the
    # pass ends; the pass then makes one more, which admits the runs queued since.
    limit = ADMISSIONS_IN_FLIGHT + 10
    spec = _spec(queue={"name": "emails", "concurrencyLimit": limit})
    key = ("emails", "")
    release = asyncio.Event()
    first = [f"a{i:02d}" for i in range(ADMISSIONS_IN_FLIGHT + 2)]
    later = [f"b{i:02d}" for i in range(3)]
    for name in first + later:
        cluster.held_reads[name] = release
    for name in first:
        cluster.add_run(name, spec, T0)
        reconciler.scheduler.enqueue(name, spec, T0.isoformat())
    passing = asyncio.create_task(reconciler.admit(key))
    while len(cluster.reads_waiting) < ADMISSIONS_IN_FLIGHT:
        await asyncio.sleep(0.01)

    for name in later:
        cluster.add_run(name, spec, T0)
        reconciler.scheduler.enqueue(name, spec, T0.isoformat())
    await asyncio.wait_for(reconciler.admit_soon(key), 30)
    assert not passing.done() and not cluster.created_pods

    release.set()
    await asyncio.wait_for(passing, 30)
    assert sorted(cluster.created_pods) == sorted(f"{name}-1" for name in first + later)
