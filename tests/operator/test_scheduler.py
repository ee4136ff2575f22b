"""Waiting lines, limits and the admission passes, against an in-memory cluster."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from podtask._contract.resources import TaskRunSpec
from podtask_operator.admission import QueueControls, effective_limit, free_slots, waiting_message
from podtask_operator.queues import BucketKey, LinePlace, WaitingLine, bucket_of
from podtask_operator.reconcile import RunReconciler
from podtask_operator.scheduler import (
    DEFERRED_FIRST_SECONDS,
    DEFERRED_MAX_SECONDS,
    AdmissionDeferred,
)
from podtask_operator.settings import OperatorSettings
from tests.operator.memory_cluster import MemoryCluster

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_waiting_line_orders_by_priority_then_creation() -> None:
    line = WaitingLine()
    line.add(LinePlace.of("late-low", 0, "2026-01-01T00:00:03Z"))
    line.add(LinePlace.of("early-low", 0, "2026-01-01T00:00:01Z"))
    line.add(LinePlace.of("late-high", 5, "2026-01-01T00:00:09Z"))
    line.add(LinePlace.of("early-low", 0, "2026-01-01T00:00:01Z"))  # a repeat is a no-op
    assert len(line) == 3
    assert line.position("late-high") == 1
    assert line.position("late-low") == 3
    assert line.remove("early-low") and not line.remove("early-low")
    assert [line.pop_first().name, line.pop_first().name] == ["late-high", "late-low"]


def test_limits() -> None:
    assert effective_limit(None, None, 10) == 10
    assert effective_limit(None, 3, 10) == 3
    assert effective_limit(QueueControls(concurrency_limit=6), 3, 10) == 6
    assert effective_limit(QueueControls(concurrency_limit=None, paused=True), 3, 10) == 3
    assert free_slots(2, 3, paused=False) == 1
    assert free_slots(4, 3, paused=False) == 0
    assert free_slots(0, 3, paused=True) == 0
    reason, message = waiting_message("emails", "", 3, 3, False, 7)
    assert reason == "QueueAtLimit"
    assert message == "queue 'emails' is at its limit 3/3; position 7"
    assert waiting_message("emails", "u1", 0, 3, True, 1)[0] == "QueuePaused"


def spec(
    queue: str = "emails", limit: int | None = 2, key: str | None = None, priority: int = 0
) -> TaskRunSpec:
    return TaskRunSpec.model_validate(
        {
            "taskId": "t",
            "version": "1",
            "image": "i",
            "module": "m",
            "machine": "micro",
            "queue": {"name": queue, "concurrencyLimit": limit},
            "concurrencyKey": key,
            "priority": priority,
        }
    )


def pod(
    name: str, queue: str = "emails", phase: str = "Running", key: str | None = None
) -> dict[str, Any]:
    labels = {"podtask.dev/queue": queue, "podtask.dev/run": name.rsplit("-", 1)[0]}
    if key is not None:
        labels["podtask.dev/concurrency-key"] = key
    return {"metadata": {"name": name, "labels": labels}, "status": {"phase": phase}}


class Line:
    """Runs in an in-memory cluster, put in their lines directly, and the reconciler that
    admits them: its real admission passes and starts, down to the pods it creates."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.cluster = MemoryCluster()
        self.reconciler = RunReconciler(self.cluster, settings, clock=lambda: NOW)
        self.scheduler = self.reconciler.scheduler

    def enqueue(self, name: str, spec: TaskRunSpec, created: str) -> BucketKey:
        self.cluster.add_run(name, spec, NOW)
        return self.scheduler.enqueue(name, spec, created)

    @property
    def started(self) -> list[str]:
        return [pod.rsplit("-", 1)[0] for pod in self.cluster.created_pods]


@pytest.fixture
def line(settings: OperatorSettings) -> Line:
    return Line(settings)


@pytest.mark.anyio
async def test_admits_up_to_the_limit_in_order_and_a_finished_pod_frees_a_slot(
    line: Line,
) -> None:
    for i in range(5):
        key = line.enqueue(f"run{i}", spec(), f"2026-01-01T00:00:0{i}Z")
    await line.reconciler.admit(key)
    assert line.started == ["run0", "run1"]
    assert line.scheduler.counts("emails") == (2, 3)
    assert line.scheduler.why_waiting("run2") == (
        "QueueAtLimit",
        "queue 'emails' is at its limit 2/2; position 1",
    )
    freed = line.scheduler.observe_pod(pod("run0-1", phase="Succeeded"))
    assert freed == key
    await line.reconciler.admit(key)
    assert line.started == ["run0", "run1", "run2"]


@pytest.mark.anyio
async def test_pods_seen_in_the_cluster_count_against_the_limit(line: Line) -> None:
    line.scheduler.observe_pod(pod("other-1"))
    line.scheduler.observe_pod(pod("other2-1", phase="Pending"))
    key = line.enqueue("run", spec(), "t")
    await line.reconciler.admit(key)
    assert line.started == []


@pytest.mark.anyio
async def test_a_pod_that_ended_before_its_creation_returned_frees_its_slot(line: Line) -> None:
    line.scheduler.observe_pod(pod("run0-1", phase="Succeeded"))  # the watch was faster
    key = line.enqueue("run0", spec(limit=1), "1")
    line.enqueue("run1", spec(limit=1), "2")
    await line.reconciler.admit(key)
    assert line.started == ["run0", "run1"]


@pytest.mark.anyio
async def test_concurrency_keys_have_the_limit_each(line: Line) -> None:
    keys = set()
    for user in ("a", "b", "c"):
        for i in range(3):
            keys.add(line.enqueue(f"{user}{i}", spec(key=user), f"{i}"))
    await line.reconciler.admit_all(list(keys))
    assert sorted(line.started) == ["a0", "a1", "b0", "b1", "c0", "c1"]
    assert bucket_of(spec(key="a")) == ("emails", "a")


@pytest.mark.anyio
async def test_priority_goes_first_and_pause_stops_admission(line: Line) -> None:
    line.scheduler.set_controls("emails", QueueControls(concurrency_limit=1, paused=True))
    key = line.enqueue("low", spec(), "1")
    line.enqueue("high", spec(priority=3), "2")
    await line.reconciler.admit(key)
    assert line.started == []
    assert line.scheduler.why_waiting("high") is not None
    line.scheduler.set_controls("emails", QueueControls(concurrency_limit=1, paused=False))
    await line.reconciler.admit(key)
    assert line.started == ["high"]


@pytest.mark.anyio
async def test_withdrawn_and_unstartable_runs_do_not_take_slots(line: Line) -> None:
    key = line.enqueue("canceled", spec(limit=1), "1")
    line.enqueue("gone", spec(limit=1), "2")
    line.enqueue("next", spec(limit=1), "3")
    assert line.scheduler.withdraw("canceled") == key
    del line.cluster.runs["gone"]  # deleted while it waited
    await line.reconciler.admit(key)
    assert line.started == ["next"]
    assert not line.scheduler.is_waiting("gone")


@pytest.mark.anyio
async def test_a_failed_start_keeps_the_run_waiting_in_its_place(line: Line) -> None:
    key = line.enqueue("first", spec(limit=1), "1")
    line.enqueue("second", spec(limit=1), "2")
    line.cluster.pod_create_errors.append(RuntimeError("the API is down"))
    await line.reconciler.admit(key)
    assert line.started == []
    assert line.scheduler.is_waiting("first")
    await line.reconciler.admit(key)
    assert line.started == ["first"]


QUOTA_MESSAGE = (
    "the cluster refused the attempt's pod for now (403 QuotaExceeded): "
    "exceeded quota: pods, limited: pods=2; trying again; position 1"
)


@pytest.mark.anyio
async def test_a_start_refused_for_now_waits_first_in_line_and_says_why(line: Line) -> None:
    scheduler = line.scheduler
    line.cluster.pod_quota = 2
    for i in range(4):
        key = line.enqueue(f"run{i}", spec(limit=10), f"{i}")
    await line.reconciler.admit(key)
    assert line.started == ["run0", "run1"]
    # The line keeps its order, and every run in it says what the cluster said.
    assert scheduler.why_waiting("run2") == ("QuotaExceeded", QUOTA_MESSAGE)
    assert line.cluster.status("run2")["conditions"][0]["reason"] == "QuotaExceeded"
    assert scheduler.why_waiting("run3") is not None
    assert scheduler.why_waiting("run3")[0] == "QuotaExceeded"  # type: ignore[index]
    # The starts of one pass refused together (run2 and run3) waited once: the next pass
    # refused doubles the wait before the next try, up to the maximum.
    refused = AdmissionDeferred("QuotaExceeded", "again")
    assert scheduler._defer(key, refused, 1000) == 2 * DEFERRED_FIRST_SECONDS
    assert scheduler._defer(key, refused, 1000) == 2 * DEFERRED_FIRST_SECONDS
    for admission_pass in range(1001, 1011):
        delay = scheduler._defer(key, refused, admission_pass)
    assert delay == DEFERRED_MAX_SECONDS
    # A pod of the queue ends and the quota has room again: admitted at once.
    line.cluster.pod_quota = 1
    assert scheduler.observe_pod(pod("run0-1", phase="Succeeded")) == key
    await line.reconciler.admit(key)
    assert line.started == ["run0", "run1", "run2"]
    assert scheduler.why_waiting("run3") == ("QuotaExceeded", QUOTA_MESSAGE)
    line.cluster.pod_quota = 5
    await line.reconciler.admit(key)
    assert line.started == ["run0", "run1", "run2", "run3"]


@pytest.mark.anyio
async def test_a_bucket_refused_for_now_is_tried_again_by_itself(line: Line) -> None:
    line.cluster.pod_quota = 0
    key = line.enqueue("run0", spec(limit=10), "0")
    await line.reconciler.admit(key)
    assert line.started == []
    line.cluster.pod_quota = 1
    for _ in range(200):
        await asyncio.sleep(0.05)
        if line.started:
            break
    assert line.started == ["run0"]


async def _until(check: Callable[[], bool]) -> None:
    """Let the reconciler's tasks run until `check` holds (a generous bound of loop turns)."""
    for _ in range(10_000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


@pytest.mark.anyio
async def test_a_bucket_starts_its_runs_side_by_side_and_creates_their_pods_in_line_order(
    line: Line,
) -> None:
    for i in range(4):
        key = line.enqueue(f"run{i}", spec(limit=3), f"{i}")
    held = {f"run{i}": asyncio.Event() for i in range(3)}
    line.cluster.held_reads.update(held)
    admission = asyncio.create_task(line.reconciler.admit(key))
    # Three starts under way at once: one at a time, run0's slow read would hold the others.
    await _until(lambda: line.cluster.reads_waiting == {"run0", "run1", "run2"})
    assert line.scheduler.counts("emails") == (3, 1)  # they hold their slots meanwhile
    held["run2"].set()
    held["run1"].set()
    await _until(lambda: not line.cluster.reads_waiting - {"run0"})
    for _ in range(100):
        await asyncio.sleep(0)
    assert line.started == []  # run1 and run2 are ready, and wait for run0's pod
    held["run0"].set()
    await admission
    assert line.started == ["run0", "run1", "run2"]
    assert line.scheduler.is_waiting("run3")
    assert line.scheduler.counts("emails") == (3, 1)


@pytest.mark.anyio
async def test_a_start_that_gives_its_slot_back_lets_the_next_run_in_after_it(
    line: Line,
) -> None:
    for i in range(4):
        key = line.enqueue(f"run{i}", spec(limit=3), f"{i}")
    held = asyncio.Event()
    line.cluster.held_reads["run0"] = held
    admission = asyncio.create_task(line.reconciler.admit(key))
    await _until(lambda: line.cluster.reads_waiting == {"run0"})
    del line.cluster.runs["run0"]  # deleted while it was being started
    held.set()
    await admission
    assert line.started == ["run1", "run2", "run3"]
    assert line.scheduler.counts("emails") == (3, 0)
