"""Waiting lines, limits and the admission loop, without a cluster."""

import asyncio
from typing import Any

import pytest

from podtask.resources import TaskRunSpec
from podtask_operator.admission import QueueControls, effective_limit, free_slots, waiting_message
from podtask_operator.queues import LinePlace, WaitingLine, bucket_of
from podtask_operator.scheduler import (
    DEFERRED_FIRST_SECONDS,
    DEFERRED_MAX_SECONDS,
    AdmissionDeferred,
    Scheduler,
)


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


class Starts:
    """The admission loop's start callback: records what it was asked to start."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.refuse: set[str] = set()
        self.fail: set[str] = set()
        self.quota_left: int | None = None

    async def __call__(self, name: str) -> str | None:
        await asyncio.sleep(0)
        if self.quota_left is not None:
            if self.quota_left == 0:
                raise AdmissionDeferred("QuotaExceeded", "exceeded quota: pods, limited: pods=2")
            self.quota_left -= 1
        if name in self.fail:
            self.fail.discard(name)
            raise RuntimeError("the API is down")
        if name in self.refuse:
            return None
        self.started.append(name)
        return f"{name}-1"


def make() -> tuple[Scheduler, Starts]:
    starts = Starts()
    return Scheduler(default_limit=10, start=starts), starts


@pytest.mark.anyio
async def test_admits_up_to_the_limit_in_order_and_a_finished_pod_frees_a_slot() -> None:
    scheduler, starts = make()
    for i in range(5):
        key = scheduler.enqueue(f"run{i}", spec(), f"2026-01-01T00:00:0{i}Z")
    await scheduler.admit(key)
    assert starts.started == ["run0", "run1"]
    assert scheduler.counts("emails") == (2, 3)
    assert scheduler.why_waiting("run2") == (
        "QueueAtLimit",
        "queue 'emails' is at its limit 2/2; position 1",
    )
    freed = scheduler.observe_pod(pod("run0-1", phase="Succeeded"))
    assert freed == key
    await scheduler.admit(key)
    assert starts.started == ["run0", "run1", "run2"]


@pytest.mark.anyio
async def test_pods_seen_in_the_cluster_count_against_the_limit() -> None:
    scheduler, starts = make()
    scheduler.observe_pod(pod("other-1"))
    scheduler.observe_pod(pod("other2-1", phase="Pending"))
    key = scheduler.enqueue("run", spec(), "t")
    await scheduler.admit(key)
    assert starts.started == []


@pytest.mark.anyio
async def test_a_pod_that_ended_before_its_creation_returned_frees_its_slot() -> None:
    scheduler, starts = make()
    scheduler.observe_pod(pod("run0-1", phase="Succeeded"))  # the watch was faster
    key = scheduler.enqueue("run0", spec(limit=1), "1")
    scheduler.enqueue("run1", spec(limit=1), "2")
    await scheduler.admit(key)
    assert starts.started == ["run0", "run1"]


@pytest.mark.anyio
async def test_concurrency_keys_have_the_limit_each() -> None:
    scheduler, starts = make()
    keys = set()
    for user in ("a", "b", "c"):
        for i in range(3):
            keys.add(scheduler.enqueue(f"{user}{i}", spec(key=user), f"{i}"))
    await scheduler.admit_all(keys)
    assert sorted(starts.started) == ["a0", "a1", "b0", "b1", "c0", "c1"]
    assert bucket_of(spec(key="a")) == ("emails", "a")


@pytest.mark.anyio
async def test_priority_goes_first_and_pause_stops_admission() -> None:
    scheduler, starts = make()
    scheduler.set_controls("emails", QueueControls(concurrency_limit=1, paused=True))
    key = scheduler.enqueue("low", spec(), "1")
    scheduler.enqueue("high", spec(priority=3), "2")
    await scheduler.admit(key)
    assert starts.started == []
    assert scheduler.why_waiting("high") is not None
    scheduler.set_controls("emails", QueueControls(concurrency_limit=1, paused=False))
    await scheduler.admit(key)
    assert starts.started == ["high"]


@pytest.mark.anyio
async def test_withdrawn_and_unstartable_runs_do_not_take_slots() -> None:
    scheduler, starts = make()
    key = scheduler.enqueue("canceled", spec(limit=1), "1")
    scheduler.enqueue("gone", spec(limit=1), "2")
    scheduler.enqueue("next", spec(limit=1), "3")
    assert scheduler.withdraw("canceled") == key
    starts.refuse.add("gone")
    await scheduler.admit(key)
    assert starts.started == ["next"]
    assert not scheduler.is_waiting("gone")


@pytest.mark.anyio
async def test_a_failed_start_keeps_the_run_waiting_in_its_place() -> None:
    scheduler, starts = make()
    key = scheduler.enqueue("first", spec(limit=1), "1")
    scheduler.enqueue("second", spec(limit=1), "2")
    starts.fail.add("first")
    await scheduler.admit(key)
    assert starts.started == []
    assert scheduler.is_waiting("first")
    await scheduler.admit(key)
    assert starts.started == ["first"]


@pytest.mark.anyio
async def test_a_start_refused_for_now_waits_first_in_line_and_says_why() -> None:
    scheduler, starts = make()
    starts.quota_left = 2
    for i in range(4):
        key = scheduler.enqueue(f"run{i}", spec(limit=10), f"{i}")
    await scheduler.admit(key)
    assert starts.started == ["run0", "run1"]
    # The line keeps its order, and every run in it says what the cluster said.
    assert scheduler.why_waiting("run2") == (
        "QuotaExceeded",
        "exceeded quota: pods, limited: pods=2; position 1",
    )
    assert scheduler.why_waiting("run3") is not None
    assert scheduler.why_waiting("run3")[0] == "QuotaExceeded"  # type: ignore[index]
    # Each refusal doubles the wait before the next try, up to the maximum.
    assert scheduler._defer(key, AdmissionDeferred("QuotaExceeded", "again")) == (
        2 * DEFERRED_FIRST_SECONDS
    )
    for _ in range(10):
        delay = scheduler._defer(key, AdmissionDeferred("QuotaExceeded", "again"))
    assert delay == DEFERRED_MAX_SECONDS
    # A pod of the queue ends and the quota has room again: admitted at once.
    starts.quota_left = 1
    assert scheduler.observe_pod(pod("run0-1", phase="Succeeded")) == key
    await scheduler.admit(key)
    assert starts.started == ["run0", "run1", "run2"]
    assert scheduler.why_waiting("run3") == (
        "QuotaExceeded",
        "exceeded quota: pods, limited: pods=2; position 1",
    )
    starts.quota_left = 5
    await scheduler.admit(key)
    assert starts.started == ["run0", "run1", "run2", "run3"]


@pytest.mark.anyio
async def test_a_bucket_refused_for_now_is_tried_again_by_itself() -> None:
    scheduler, starts = make()
    starts.quota_left = 0
    key = scheduler.enqueue("run0", spec(limit=10), "0")
    await scheduler.admit(key)
    assert starts.started == []
    starts.quota_left = 1
    for _ in range(100):
        await asyncio.sleep(0.05)
        if starts.started:
            break
    assert starts.started == ["run0"]
