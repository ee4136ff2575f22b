"""A run whose attempt waits gives its queue slot back and takes one again before it goes on:
the pure decisions (`waits`), the scheduler's count and line, and the reconciler acting on
them against an in-memory cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podtask._contract.resources import Attempt, RunPhase, RunWait, TaskRunSpec, TaskRunStatus
from podtask_operator.queues import LinePlace, WaitingLine
from podtask_operator.reconcile import RunReconciler
from podtask_operator.scheduler import Scheduler
from podtask_operator.settings import OperatorSettings
from podtask_operator.waits import (
    WaitStep,
    continued,
    released,
    resumed,
    wait_step,
    waited_deadline,
)
from tests.operator.memory_cluster import MemoryCluster

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _spec(limit: int = 1, key: str | None = None) -> TaskRunSpec:
    return TaskRunSpec.model_validate(
        {
            "taskId": "t",
            "version": "1",
            "image": "i",
            "module": "m",
            "machine": "micro",
            "queue": {"name": "solo", "concurrencyLimit": limit},
            "concurrencyKey": key,
            "retry": {"maxAttempts": 1},
        }
    )


def _wait(attempt: int = 1, resume: bool = False, runs: list[str] | None = None) -> RunWait:
    runs = ["run-child"] if runs is None else runs
    return RunWait(
        attempt=attempt,
        since=T0,
        runs=runs,
        run_count=len(runs),
        until=None if runs else T0 + timedelta(seconds=30),
        waiting_for=", ".join(runs) or "30s",
        resume_requested_at=T0 + timedelta(seconds=5) if resume else None,
    )


def _status(phase: RunPhase, wait: RunWait | None, attempt: int = 1) -> TaskRunStatus:
    attempts = [
        Attempt(number=n, pod=f"r-{n}", machine="micro", started_at=T0)
        for n in range(1, attempt + 1)
    ]
    return TaskRunStatus(phase=phase, attempt=attempt, attempts=attempts, wait=wait)


# --- the decisions -----------------------------------------------------------------------


def test_each_step_of_a_wait() -> None:
    executing, waiting = RunPhase.EXECUTING, RunPhase.WAITING
    assert wait_step(_status(executing, None)) is WaitStep.NONE
    assert wait_step(_status(executing, _wait())) is WaitStep.RELEASE
    assert wait_step(_status(executing, _wait(resume=True))) is WaitStep.CONTINUE
    assert wait_step(_status(waiting, _wait())) is WaitStep.HOLD
    assert wait_step(_status(waiting, _wait(resume=True))) is WaitStep.RESUME
    # A wait of an earlier attempt is stale: the current attempt does not wait.
    assert wait_step(_status(executing, _wait(attempt=1), attempt=2)) is WaitStep.NONE
    assert wait_step(_status(RunPhase.WAITING_TO_RETRY, _wait())) is WaitStep.NONE


def test_released_says_what_it_waits_for_and_resumed_counts_the_time_waited() -> None:
    status = released(_status(RunPhase.EXECUTING, _wait()), T0)
    assert status.phase == RunPhase.WAITING
    [condition] = status.conditions
    assert (condition.type, condition.reason) == ("Waiting", "WaitingForRuns")
    assert condition.message == "Waiting for run-child"
    for_time = released(_status(RunPhase.EXECUTING, _wait(runs=[])), T0)
    assert for_time.conditions[0].reason == "WaitingForTime"

    back = resumed(status, T0 + timedelta(seconds=12))
    assert (back.phase, back.wait, back.conditions) == (RunPhase.EXECUTING, None, [])
    assert back.attempts[-1].waited_seconds == 12
    again = continued(
        _status(RunPhase.EXECUTING, _wait(resume=True)).model_copy(
            update={"attempts": back.attempts}
        ),
        T0 + timedelta(seconds=3),
    )
    assert (again.phase, again.wait) == (RunPhase.EXECUTING, None)
    assert again.attempts[-1].waited_seconds == 15


def test_max_duration_does_not_count_waiting() -> None:
    deadline = T0 + timedelta(seconds=60)
    assert waited_deadline(None, _status(RunPhase.EXECUTING, None)) is None
    assert waited_deadline(deadline, _status(RunPhase.WAITING, _wait())) is None
    assert waited_deadline(deadline, _status(RunPhase.EXECUTING, _wait())) is None
    back = resumed(_status(RunPhase.WAITING, _wait(resume=True)), T0 + timedelta(seconds=40))
    assert waited_deadline(deadline, back) == deadline + timedelta(seconds=40)


# --- the scheduler -------------------------------------------------------------------------


def test_resuming_runs_go_before_runs_that_have_not_started() -> None:
    line = WaitingLine()
    line.add(LinePlace.of("new-urgent", 9, "2026-01-01T00:00:01Z"))
    line.add(LinePlace.of("resuming-late", 0, "2026-01-01T00:00:09Z", resuming=True))
    line.add(LinePlace.of("resuming-early", 0, "2026-01-01T00:00:05Z", resuming=True))
    line.add(LinePlace.of("new", 0, "2026-01-01T00:00:00Z"))
    order = [line.pop_first().name for _ in range(4)]
    assert order == ["resuming-early", "resuming-late", "new-urgent", "new"]


def _pod(name: str, phase: str = "Running", key: str | None = None) -> dict[str, Any]:
    labels = {"podtask.dev/queue": "solo", "podtask.dev/run": name.rsplit("-", 1)[0]}
    if key is not None:
        labels["podtask.dev/concurrency-key"] = key
    return {"metadata": {"name": name, "labels": labels}, "status": {"phase": phase}}


def test_a_waiting_runs_pod_holds_no_slot_until_it_is_admitted_again() -> None:
    scheduler = Scheduler(default_limit=10)
    spec = _spec(limit=1)
    scheduler.observe_pod(_pod("parent-1"))
    key = scheduler.enqueue("child", spec, "2")
    assert scheduler.next_admission(key) is None  # the parent holds the one slot
    assert scheduler.release(spec, "parent-1") == key
    assert scheduler.release(spec, "parent-1") is None  # once
    assert scheduler.counts("solo") == (0, 1)
    child = scheduler.next_admission(key)
    assert child is not None and child.name == "child"
    scheduler.admitted(key, "child", "child-1")

    # The parent's wait is over: it goes before a run triggered meanwhile, once a slot frees.
    scheduler.enqueue("later", spec, "3")
    scheduler.enqueue("parent", spec, "1", resuming=True)
    assert scheduler.next_admission(key) is None
    assert scheduler.why_waiting("parent") == (
        "QueueAtLimit",
        "queue 'solo' is at its limit 1/1; position 1",
    )
    scheduler.observe_pod(_pod("child-1", phase="Succeeded"))
    place = scheduler.next_admission(key)
    assert place is not None and place.name == "parent"
    scheduler.admitted(key, "parent", "parent-1")
    assert scheduler.counts("solo") == (1, 1)
    assert scheduler.next_admission(key) is None


def test_a_released_pod_that_ends_is_forgotten_and_keys_release_their_own_slot() -> None:
    scheduler = Scheduler(default_limit=10)
    keyed = _spec(limit=1, key="ann")
    scheduler.observe_pod(_pod("p-1", key="ann"))
    key = scheduler.release(keyed, "p-1")
    assert key == ("solo", "ann")
    scheduler.observe_pod(_pod("p-1", phase="Failed", key="ann"))
    assert scheduler.release(keyed, "p-1") is None  # an ended pod is not released again
    assert scheduler.counts("solo") == (0, 0)


# --- the reconciler ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_parent_waiting_on_its_child_in_a_queue_of_one(settings: OperatorSettings) -> None:
    cluster = MemoryCluster()
    now = [T0]
    reconciler = RunReconciler(cluster, settings, clock=lambda: now[0])
    cluster.add_run("parent", _spec(), T0)
    await reconciler.run_changed("parent")
    await reconciler.pod_changed((await cluster.get_pod("parent-1")) or {})
    cluster.add_run("child", _spec(), T0 + timedelta(seconds=1))
    await reconciler.run_changed("child")
    assert cluster.created_pods == ["parent-1"]  # the parent holds the queue's one slot

    # The parent's runner waits on the child: the parent gives its slot back, the child starts.
    cluster.wait("parent", _wait(runs=["child"]).to_wire())
    await reconciler.run_changed("parent")
    parent = cluster.status("parent")
    assert parent["phase"] == "Waiting"
    assert parent["conditions"][-1]["message"] == "Waiting for child"
    assert cluster.created_pods == ["parent-1", "child-1"]

    # A run triggered now waits; the child's end lets the parent, not it, take the slot.
    cluster.add_run("later", _spec(), T0 + timedelta(seconds=2))
    await reconciler.run_changed("later")
    cluster.wait("parent", _wait(runs=["child"], resume=True).to_wire())
    await reconciler.run_changed("parent")
    assert cluster.status("parent")["phase"] == "Waiting"  # the child still holds the slot
    assert cluster.status("parent")["conditions"][-1]["reason"] == "QueueAtLimit"
    now[0] = T0 + timedelta(seconds=20)
    cluster.report("child", {"attempt": 1, "ok": True, "output": 2})
    cluster.pod_ends("child-1", exit_code=0)
    await reconciler.pod_changed((await cluster.get_pod("child-1")) or {})
    parent = cluster.status("parent")
    assert (parent["phase"], parent.get("wait")) == ("Executing", None)
    assert parent["attempts"][0]["waitedSeconds"] == 20
    assert cluster.status("later")["phase"] == "Queued"
    assert cluster.created_pods == ["parent-1", "child-1"]  # no second pod for the parent

    # A restarted operator sees the same: a waiting run's pod holds no slot.
    cluster.wait("parent", _wait(runs=["child"]).to_wire())
    await reconciler.run_changed("parent")
    assert cluster.created_pods == ["parent-1", "child-1", "later-1"]
    fresh = RunReconciler(cluster, settings, clock=lambda: now[0])
    await fresh.rebuild()
    assert fresh.scheduler.counts("solo") == (1, 0)
    for name in cluster.runs:
        reconciler.forget(name)
        fresh.forget(name)


@pytest.mark.anyio
async def test_a_waiting_run_canceled_or_crashed_ends_and_leaves_the_line(
    settings: OperatorSettings,
) -> None:
    cluster = MemoryCluster()
    reconciler = RunReconciler(cluster, settings, clock=lambda: T0)
    for name in ("a", "b"):
        cluster.add_run(name, _spec(limit=2), T0)
        await reconciler.run_changed(name)
        cluster.wait(name, _wait(runs=["x"]).to_wire())
        await reconciler.run_changed(name)
        assert cluster.status(name)["phase"] == "Waiting"

    cluster.cancel("a", T0)
    await reconciler.run_changed("a")
    a = cluster.status("a")
    assert (a["phase"], a.get("wait"), cluster.deleted_pods) == ("Canceled", None, ["a-1"])
    assert a["attempts"][0]["finishedAt"]

    # b's wait is over but its pod crashes before it is resumed: its attempt ends, and the
    # place it held in line is given up.
    cluster.wait("b", _wait(runs=["x"], resume=True).to_wire())
    reconciler.scheduler.observe_pod(_pod("blocker-1"))
    reconciler.scheduler.observe_pod(_pod("blocker2-1"))
    await reconciler.run_changed("b")
    assert reconciler.scheduler.is_waiting("b")
    cluster.pod_ends("b-1", exit_code=1)
    await reconciler.pod_changed((await cluster.get_pod("b-1")) or {})
    b = cluster.status("b")
    assert (b["phase"], b.get("wait")) == ("Crashed", None)
    assert not reconciler.scheduler.is_waiting("b")
    for name in cluster.runs:
        reconciler.forget(name)
