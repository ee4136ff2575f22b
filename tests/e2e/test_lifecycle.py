"""A run's life beyond one attempt: retries and their backoff, delay, ttl, maxDuration,
cancel and replay — each end to end through the real operator, on both clusters."""

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from podtask._contract.resources import RetryPolicy
from podtask._contract.retry import retry_delay_ms
from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import TASK_MODULES, at, wait_until
from tests.reliability.faults import ClusterWatch

SEED = 7


@pytest.fixture(scope="module")
def composed(
    tmp_path_factory: pytest.TempPathFactory, cluster_kind: str
) -> Iterator[ComposedStack]:
    stack = ComposedStack(
        tmp_path_factory.mktemp("lifecycle"),
        [str(TASK_MODULES / "queued.py")],
        operator_env={"PODTASK_RETRY_JITTER_SEED": str(SEED)},
        cluster_kind=cluster_kind,
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def pause(composed: ComposedStack, queue: str, paused: bool) -> None:
    composed.kubectl(
        "patch",
        "taskqueue",
        queue,
        "--type",
        "merge",
        "-p",
        f'{{"spec":{{"paused":{str(paused).lower()}}}}}',
    )


class RetryWatch(ClusterWatch):
    """When the operator set each retry of a TaskRun to start: `nextAttemptAt` by attempt."""

    plural = "taskruns"
    name = "retry-watch"

    def __init__(self, kubeconfig: str) -> None:
        self._retries: dict[str, dict[int, str]] = {}
        super().__init__(kubeconfig)

    def retries(self, run: str) -> dict[int, str]:
        with self._lock:
            return dict(self._retries.get(run, {}))

    def _see(self, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        if status.get("phase") == "WaitingToRetry" and status.get("nextAttemptAt"):
            with self._lock:
                retries = self._retries.setdefault(obj["metadata"]["name"], {})
                retries[status["attempt"]] = status["nextAttemptAt"]


def test_retries_wait_exactly_the_policys_backoff(composed: ComposedStack) -> None:
    # The first retry of this operator: its seeded random source gives these two jitters.
    jitter = random.Random(SEED)
    policy = RetryPolicy(max_attempts=3, min_timeout_ms=400, factor=2, randomize=True)
    expected = [retry_delay_ms(policy, n, jitter.random) / 1000 for n in (1, 2)]

    watch = RetryWatch(str(composed.cluster.kubeconfig_path)).start()
    try:
        run_id = composed.trigger("jittered-retry", {})
        run = composed.wait_for(run_id)
    finally:
        watch.stop()
    assert run["status"] == "Completed"
    assert run["output"] == {"attempt": 3}
    attempts = run["attempts"]
    assert [a["reason"] for a in attempts] == ["Error", "Error", "Completed"]
    # From the times the operator recorded, not the test's clock: each retry was set for
    # exactly its backoff after the attempt ended, and did not start before.
    retry_at = watch.retries(run_id)
    assert sorted(retry_at) == [1, 2], retry_at
    for n in (0, 1):
        due = at(retry_at[n + 1])
        backoff = (due - at(attempts[n]["finishedAt"])).total_seconds()
        assert backoff == pytest.approx(expected[n], abs=0.001), (n, backoff, expected)
        assert at(attempts[n + 1]["startedAt"]) >= due, (n, attempts[n + 1], due)


def test_a_delayed_run_waits_then_runs(composed: ComposedStack) -> None:
    run_id = composed.trigger("gated", {"echo": "later"}, delay=2)
    assert wait_until(lambda: composed.run(run_id)["status"] == "Delayed", timeout=10)
    run = composed.wait_for(run_id, timeout=60)
    assert run["status"] == "Completed"
    assert at(run["startedAt"]) >= at(run["createdAt"]) + timedelta(seconds=1.9)


def test_a_run_that_cannot_start_within_its_ttl_expires(composed: ComposedStack) -> None:
    pause(composed, "gated", True)
    try:
        run = composed.wait_for(composed.trigger("gated", {}, ttl=1), timeout=30)
    finally:
        pause(composed, "gated", False)
    assert run["status"] == "Expired"
    assert run["attempts"] == []
    assert any(c["reason"] == "Expired" for c in run["conditions"])


def test_a_run_past_its_max_duration_times_out(composed: ComposedStack) -> None:
    run = composed.wait_for(composed.trigger("sleepy", {"seconds": 30}), timeout=60)
    assert run["status"] == "TimedOut"
    assert run["error"]["type"] == "MaxDurationExceededError"
    assert len(run["attempts"]) == 1


def test_cancel_a_queued_run(composed: ComposedStack) -> None:
    pause(composed, "gated", True)
    try:
        run_id = composed.trigger("gated", {})
        wait_until(lambda: composed.run(run_id)["status"] == "Queued")
        with composed.http() as http:
            assert http.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
        run = composed.wait_for(run_id, timeout=30)
    finally:
        pause(composed, "gated", False)
    assert run["status"] == "Canceled"
    assert run["attempts"] == []


def test_cancel_an_executing_run_deletes_its_pod(composed: ComposedStack) -> None:
    run_id = composed.trigger("gated", {"seconds": 60})
    wait_until(lambda: composed.run(run_id)["status"] == "Executing")
    with composed.http() as http:
        assert http.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
    run = composed.wait_for(run_id, timeout=30)
    assert run["status"] == "Canceled"
    assert run["attempts"][0]["reason"] == "Canceled"

    def pod_gone() -> bool:
        names = {
            p["metadata"]["name"] for p in composed.cluster.objects("pods", namespace="default")
        }
        return f"{run_id}-1" not in names

    wait_until(pod_gone)
    # The slot is free again: the next run of the queue starts and completes.
    assert composed.wait_for(composed.trigger("gated", {"echo": "next"}))["status"] == "Completed"


def test_replay_runs_the_old_spec_again_with_a_new_payload(composed: ComposedStack) -> None:
    original = composed.wait_for(composed.trigger("gated", {"echo": "first"}))
    with composed.http() as http:
        response = http.post(
            f"/api/v1/runs/{original['id']}/replay", json={"payload": {"echo": "again"}}
        )
    assert response.status_code == 201, response.text
    replay = composed.wait_for(response.json()["id"])
    assert replay["status"] == "Completed"
    assert replay["output"] == {"echo": "again"}
    assert replay["replayOf"] == original["id"]
    assert replay["version"] == original["version"]
