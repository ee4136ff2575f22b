"""What the reconciler reads when kopf hands it watch events: a run's event is decided on the
event's own body, a pod's event is the read of that pod, and a running pod is judged as the
pod watch last showed it; the run is read again only where a decision needs a read no older
than something else (the start of an attempt; an ended pod, for the report made before it).
A wake-up of its own (a timer) has no event to trust: it reads both."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podtask_operator.reconcile import RunReconciler
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
