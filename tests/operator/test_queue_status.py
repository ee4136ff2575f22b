"""The status the operator writes on each TaskQueue: its counts and the limit in force, so
that `kubectl get taskqueues` and the API show the number that holds a queue that declares
none (the operator's default) rather than nothing."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from podtask_operator.reconcile import RunReconciler
from podtask_operator.settings import OperatorSettings
from tests.operator.memory_cluster import MemoryCluster
from tests.operator.test_scheduler import _until
from tests.operator.test_scheduler import spec as run_spec

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_LIMIT = 7


def task_queue(
    name: str, limit: int | None, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    queue: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {"concurrencyLimit": limit, "paused": False},
    }
    if status is not None:
        queue["status"] = status
    return queue


async def written(cluster: MemoryCluster, queue: str, **expected: int) -> dict[str, Any]:
    """The queue's status once it holds `expected` (the writes come a moment after a change)."""
    for _ in range(400):
        status: dict[str, Any] = cluster.queues[queue].get("status") or {}
        if all(status.get(field) == value for field, value in expected.items()):
            return status
        await asyncio.sleep(0.025)
    raise AssertionError(f"queue {queue}: {cluster.queues[queue].get('status')} != {expected}")


@pytest.fixture
def settings(settings: OperatorSettings) -> OperatorSettings:
    return settings.model_copy(update={"default_concurrency_limit": DEFAULT_LIMIT})


@pytest.mark.anyio
async def test_every_queue_gets_its_limit_in_force_the_default_when_none_is_set(
    settings: OperatorSettings,
) -> None:
    cluster = MemoryCluster()
    cluster.queues = {
        "bulk": task_queue("bulk", None),
        "emails": task_queue("emails", 4),
        # Counts left by an operator before: corrected, the limit added.
        "stale": task_queue("stale", None, {"running": 3, "queued": 9}),
    }
    reconciler = RunReconciler(cluster, settings, clock=lambda: NOW)
    await reconciler.rebuild()
    assert await written(cluster, "bulk", limitInForce=DEFAULT_LIMIT) == {
        "running": 0,
        "queued": 0,
        "limitInForce": DEFAULT_LIMIT,
    }
    await written(cluster, "emails", limitInForce=4)
    await written(cluster, "stale", running=0, queued=0, limitInForce=DEFAULT_LIMIT)

    # A limit set live is in force at once; taken off, the default is again.
    await reconciler.queue_changed("emails", task_queue("emails", 2, {"limitInForce": 4}))
    await written(cluster, "emails", limitInForce=2)
    await reconciler.queue_changed("emails", task_queue("emails", None, {"limitInForce": 2}))
    await written(cluster, "emails", limitInForce=DEFAULT_LIMIT)


@pytest.mark.anyio
async def test_without_a_limit_of_its_own_a_queue_holds_its_runs_declared_limit(
    settings: OperatorSettings,
) -> None:
    cluster = MemoryCluster()
    cluster.queues = {"reports": task_queue("reports", None)}
    reconciler = RunReconciler(cluster, settings, clock=lambda: NOW)
    await reconciler.rebuild()
    await written(cluster, "reports", limitInForce=DEFAULT_LIMIT)
    cluster.add_run("run-1", run_spec("reports", 3), NOW)
    await reconciler.run_changed("run-1")
    await written(cluster, "reports", limitInForce=3, running=1)


@pytest.mark.anyio
async def test_a_queue_made_again_gets_its_status_again(settings: OperatorSettings) -> None:
    cluster = MemoryCluster()
    cluster.queues = {"bulk": task_queue("bulk", None)}
    reconciler = RunReconciler(cluster, settings, clock=lambda: NOW)
    await reconciler.rebuild()
    await written(cluster, "bulk", limitInForce=DEFAULT_LIMIT)
    del cluster.queues["bulk"]
    await reconciler.queue_changed("bulk", None)
    cluster.queues["bulk"] = task_queue("bulk", None)
    await reconciler.queue_changed("bulk", task_queue("bulk", None))
    await written(cluster, "bulk", limitInForce=DEFAULT_LIMIT)


@pytest.mark.anyio
async def test_the_generation_acted_on_is_written_once_the_starts_under_way_ended(
    settings: OperatorSettings,
) -> None:
    cluster = MemoryCluster()
    cluster.queues = {"reports": task_queue("reports", 5)}
    cluster.queues["reports"]["metadata"]["generation"] = 1
    reconciler = RunReconciler(cluster, settings, clock=lambda: NOW)
    await reconciler.rebuild()
    await written(cluster, "reports", observedGeneration=1)
    for i in range(3):
        cluster.add_run(f"run-{i}", run_spec("reports", 5), NOW)
        reconciler.scheduler.enqueue(f"run-{i}", run_spec("reports", 5), str(i))
    answer = cluster.held_reads["run-0"] = asyncio.Event()
    admission = asyncio.create_task(reconciler.admit(("reports", "")))
    await _until(lambda: "run-0" in cluster.reads_waiting)  # run-0's start is under way

    paused = task_queue("reports", 5, {"observedGeneration": 1})
    paused["spec"]["paused"] = True
    paused["metadata"]["generation"] = 2
    pausing = asyncio.create_task(reconciler.queue_changed("reports", paused))
    for _ in range(40):
        await asyncio.sleep(0.025)
    assert not pausing.done()  # it waits for run-0's start
    assert cluster.queues["reports"]["status"]["observedGeneration"] == 1
    answer.set()
    await admission
    await pausing
    await written(cluster, "reports", observedGeneration=2)
    # The starts under way had sent no pod: the pause withdrew them, and they wait in line.
    assert cluster.created_pods == []
    assert all(reconciler.scheduler.is_waiting(f"run-{i}") for i in range(3))
    assert reconciler.scheduler.counts("reports") == (0, 3)
    resumed = task_queue("reports", 5, {"observedGeneration": 2})
    resumed["metadata"]["generation"] = 3
    await reconciler.queue_changed("reports", resumed)
    assert cluster.created_pods == ["run-0-1", "run-1-1", "run-2-1"]
