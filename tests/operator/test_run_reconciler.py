"""The `RunReconciler` driven directly, without kopf: an in-memory cluster stands in for the
Kubernetes API, a settable clock for time, and the test plays the pod watch and the runner.
Each step is one event as kopf would deliver it; the assertions are what the reconciler
wrote and created in return."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podtask._contract.resources import TaskRunSpec
from podtask_operator.kube import Refused
from podtask_operator.pods import token_secret_name
from podtask_operator.queue_status import QUEUE_STATUS_DELAY_SECONDS
from podtask_operator.reconcile import RunReconciler
from podtask_operator.settings import OperatorSettings
from tests.operator.memory_cluster import MemoryCluster

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BACKOFF = timedelta(seconds=60)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _spec(**changes: Any) -> TaskRunSpec:
    return TaskRunSpec.model_validate(
        {
            "taskId": "t",
            "version": "1",
            "image": "registry.example/tasks:1",
            "module": "tasks",
            "machine": "micro",
            "queue": {"name": "emails", "concurrencyLimit": 1},
            "retry": {
                "maxAttempts": 2,
                "minTimeoutMs": int(BACKOFF.total_seconds() * 1000),
                "maxTimeoutMs": int(BACKOFF.total_seconds() * 1000),
                "randomize": False,
            },
            **changes,
        }
    )


def _waiting_reason(status: dict[str, Any]) -> str | None:
    return next((c["reason"] for c in status.get("conditions", []) if c["type"] == "Waiting"), None)


class Operator:
    """The reconciler, and the watch events a test sends it."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.cluster = MemoryCluster()
        self.clock = Clock()
        self.reconciler = RunReconciler(self.cluster, settings, clock=self.clock, random=lambda: 0)

    async def pod_seen(self, name: str) -> None:
        pod = await self.cluster.get_pod(name)
        assert pod is not None
        await self.reconciler.pod_changed(pod)

    def close(self) -> None:
        for name in self.cluster.runs:
            self.reconciler.forget(name)


@pytest.fixture
def operator(settings: OperatorSettings) -> Operator:
    return Operator(settings)


@pytest.mark.anyio
async def test_admission_pods_ends_and_retries(operator: Operator) -> None:
    cluster, clock, reconciler = operator.cluster, operator.clock, operator.reconciler
    cluster.add_run("a", _spec(), T0)
    cluster.add_run("b", _spec(), T0 + timedelta(seconds=1))
    await reconciler.run_changed("a")
    await reconciler.run_changed("b")

    # Admission: the queue's one slot goes to the first run; the second says why it waits.
    assert cluster.created_pods == ["a-1"]
    assert list(cluster.secrets) == [token_secret_name("a", 1)]  # the pod's token, first
    a = cluster.status("a")
    assert (a["phase"], a["attempt"], a["attempts"][0]["pod"]) == ("Executing", 1, "a-1")
    b = cluster.status("b")
    assert (b["phase"], _waiting_reason(b)) == ("Queued", "QueueAtLimit")
    await operator.pod_seen("a-1")  # its pod runs: nothing to decide
    assert cluster.status("a")["phase"] == "Executing"

    # Attempt 1 crashes without a report: a retry after the backoff; its slot goes to b.
    clock.advance(10)
    cluster.pod_ends("a-1", exit_code=1)
    await operator.pod_seen("a-1")
    a = cluster.status("a")
    assert a["phase"] == "WaitingToRetry"
    assert a["attempts"][0]["exitCode"] == 1 and a["attempts"][0]["reason"] == "Crashed"
    assert datetime.fromisoformat(a["nextAttemptAt"]) == clock.now + BACKOFF
    assert ("a", "Warning", "WaitingToRetry") in cluster.events
    assert cluster.created_pods == ["a-1", "b-1"]
    assert cluster.status("b")["phase"] == "Executing"

    # Before the backoff is over, a wake-up changes nothing.
    clock.advance(30)
    await reconciler.run_changed("a")
    assert cluster.status("a")["phase"] == "WaitingToRetry"
    # After it, the retry waits in line behind b, which holds the slot.
    clock.advance(31)
    await reconciler.run_changed("a")
    assert cluster.created_pods == ["a-1", "b-1"]
    a = cluster.status("a")
    assert (a["phase"], _waiting_reason(a)) == ("Queued", "QueueAtLimit")

    # b reports success and exits: it completes with its output, and a's attempt 2 starts.
    cluster.report("b", {"attempt": 1, "ok": True, "output": {"n": 2}})
    cluster.pod_ends("b-1", exit_code=0)
    await operator.pod_seen("b-1")
    b = cluster.status("b")
    assert (b["phase"], b["output"]) == ("Completed", {"n": 2})
    assert ("b", "Normal", "Completed") in cluster.events
    assert cluster.created_pods == ["a-1", "b-1", "a-2"]
    a = cluster.status("a")
    assert (a["phase"], a["attempt"], _waiting_reason(a)) == ("Executing", 2, None)

    # Its last attempt fails with the task's error: no retry left, the run failed.
    cluster.report(
        "a", {"attempt": 2, "ok": False, "error": {"type": "ValueError", "message": "bad"}}
    )
    cluster.pod_ends("a-2", exit_code=1)
    await operator.pod_seen("a-2")
    a = cluster.status("a")
    assert (a["phase"], a["error"]["type"]) == ("Failed", "ValueError")
    assert [x["reason"] for x in a["attempts"]] == ["Crashed", "Error"]
    assert cluster.created_pods == ["a-1", "b-1", "a-2"]
    operator.close()


@pytest.mark.anyio
async def test_delay_then_ttl_then_expiry_without_a_pod(operator: Operator) -> None:
    cluster, clock, reconciler = operator.cluster, operator.clock, operator.reconciler
    cluster.add_run("late", _spec(delayUntil=(T0 + timedelta(seconds=30)).isoformat()), T0)
    cluster.add_run("stale", _spec(ttlSeconds=5), T0)
    cluster.add_run("blocker", _spec(), T0 - timedelta(seconds=1))
    await reconciler.run_changed("blocker")
    await reconciler.run_changed("late")
    await reconciler.run_changed("stale")
    assert cluster.created_pods == ["blocker-1"]
    late = cluster.status("late")
    assert (late["phase"], _waiting_reason(late)) == ("Delayed", "Delayed")
    assert cluster.status("stale")["phase"] == "Queued"

    # The ttl passes while it waits in line: it expires, and never gets a pod.
    clock.advance(6)
    await reconciler.run_changed("stale")
    stale = cluster.status("stale")
    assert stale["phase"] == "Expired" and not reconciler.scheduler.is_waiting("stale")
    # The delay is over: it queues (the slot is taken) and starts once the slot frees up.
    clock.advance(30)
    await reconciler.run_changed("late")
    assert cluster.status("late")["phase"] == "Queued"
    cluster.report("blocker", {"attempt": 1, "ok": True, "output": None})
    cluster.pod_ends("blocker-1", exit_code=0)
    await operator.pod_seen("blocker-1")
    assert cluster.created_pods == ["blocker-1", "late-1"]
    assert "stale-1" not in cluster.pods
    operator.close()


@pytest.mark.anyio
async def test_a_cancel_while_queued_and_a_pod_refused_for_good(operator: Operator) -> None:
    cluster, clock, reconciler = operator.cluster, operator.clock, operator.reconciler
    cluster.add_run("first", _spec(), T0)
    cluster.add_run("queued", _spec(), T0 + timedelta(seconds=1))
    cluster.pod_create_errors.append(Refused(422, "Invalid", "spec.containers[0].image: bad"))
    await reconciler.run_changed("first")
    first = cluster.status("first")
    assert (first["phase"], first["error"]["type"]) == ("SystemFailure", "PodRejected")
    assert "spec.containers[0].image: bad" in first["error"]["message"]
    # The refused start took no slot: the next run starts; a cancel ends a queued one.
    await reconciler.run_changed("queued")
    assert cluster.created_pods == ["queued-1"]
    cluster.add_run("canceled", _spec(), T0 + timedelta(seconds=2))
    await reconciler.run_changed("canceled")
    assert cluster.status("canceled")["phase"] == "Queued"
    clock.advance(1)
    cluster.cancel("canceled", clock.now)
    await reconciler.run_changed("canceled")
    assert cluster.status("canceled")["phase"] == "Canceled"
    assert not reconciler.scheduler.is_waiting("canceled")
    # Canceled while its attempt runs: its pod is deleted.
    cluster.cancel("queued", clock.now)
    await reconciler.run_changed("queued")
    assert cluster.status("queued")["phase"] == "Canceled"
    assert cluster.deleted_pods == ["queued-1"]
    operator.close()


@pytest.mark.anyio
async def test_a_pods_end_starts_the_next_run_before_its_own_run_is_read(
    operator: Operator,
) -> None:
    """The slot is free once the pod has ended: the next run's pod is created without waiting
    for a read of the ended run (which a run completed with its report needs only for its
    Event)."""
    cluster, reconciler = operator.cluster, operator.reconciler
    cluster.add_run("a", _spec(), T0)
    cluster.add_run("b", _spec(), T0 + timedelta(seconds=1))
    await reconciler.run_changed("a")
    await reconciler.run_changed("b")
    cluster.report_through_api("a", {"attempt": 1, "ok": True, "output": 1}, T0)
    cluster.pod_ends("a-1", exit_code=0)
    order: list[str] = []
    get_run, create_pod = cluster.get_run, cluster.create_pod

    async def read(name: str) -> dict[str, Any] | None:
        order.append(f"read {name}")
        return await get_run(name)

    async def create(body: dict[str, Any]) -> dict[str, Any]:
        order.append(f"create {body['metadata']['name']}")
        return await create_pod(body)

    cluster.get_run, cluster.create_pod = read, create  # type: ignore[method-assign]
    await operator.pod_seen("a-1")
    assert order.index("create b-1") < order.index("read a")
    assert cluster.status("a")["phase"] == "Completed"
    assert cluster.status("b")["phase"] == "Executing"
    assert cluster.events[-1] == ("a", "Normal", "Completed")


@pytest.mark.anyio
async def test_a_report_made_before_a_first_attempt_is_recorded_is_kept(
    operator: Operator,
) -> None:
    """A run with no status yet whose runner reports before the operator records the attempt
    (an operator paused between creating the pod and writing the attempt): the record of the
    attempt is written onto the status the report made, not in place of it, and the run ends
    with its task's output, not as a crash."""
    cluster, reconciler = operator.cluster, operator.reconciler
    cluster.add_run("a", _spec(), T0)
    create_pod = cluster.create_pod

    async def create_then_report(body: dict[str, Any]) -> dict[str, Any]:
        pod = await create_pod(body)
        cluster.report_through_api("a", {"attempt": 1, "ok": True, "output": {"n": 1}}, T0)
        return pod

    cluster.create_pod = create_then_report  # type: ignore[method-assign]
    await reconciler.run_changed("a")
    a = cluster.status("a")
    assert (a["phase"], a["attempt"], a["report"]["attempt"]) == ("Executing", 1, 1)

    cluster.pod_ends("a-1", exit_code=0)
    await operator.pod_seen("a-1")
    a = cluster.status("a")
    assert (a["phase"], a["output"]) == ("Completed", {"n": 1})
    operator.close()


@pytest.mark.anyio
async def test_a_closed_reconciler_calls_the_cluster_no_more(operator: Operator) -> None:
    """Closed as the operator stops, before its cluster client: a pending queue status write
    and a run's wake-up are dropped (a call after the client closed opened a connection that
    nothing closed)."""
    cluster, clock, reconciler = operator.cluster, operator.clock, operator.reconciler
    calls: list[str] = []
    patch_queue_status, get_run = cluster.patch_queue_status, cluster.get_run

    async def queue_status(name: str, status: dict[str, Any]) -> bool:
        calls.append(f"queue/{name}")
        return await patch_queue_status(name, status)

    async def read(name: str) -> dict[str, Any] | None:
        calls.append(f"run/{name}")
        return await get_run(name)

    cluster.add_run("a", _spec(), T0)
    await reconciler.run_changed("a")  # started: its queue's status is to be written soon
    cluster.pod_ends("a-1", exit_code=1)
    await operator.pod_seen("a-1")  # crashed: a retry after the backoff
    assert cluster.status("a")["phase"] == "WaitingToRetry"
    cluster.patch_queue_status, cluster.get_run = queue_status, read  # type: ignore[method-assign]
    await reconciler.close()
    clock.advance(BACKOFF.total_seconds() + 1)
    await asyncio.sleep(QUEUE_STATUS_DELAY_SECONDS + 0.2)
    assert calls == []
