"""Admission: queues hold their limit, keep their order, and follow live changes; on both
clusters (on the real one, each pod creation is seen from a watch: `real_stack`)."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from podtask._contract.limits import MAX_QUEUE_NAME_LENGTH
from podtask_operator.settings import OperatorSettings
from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import TASK_MODULES, wait_until


@pytest.fixture(scope="module")
def composed(
    tmp_path_factory: pytest.TempPathFactory, cluster_kind: str
) -> Iterator[ComposedStack]:
    stack = ComposedStack(
        tmp_path_factory.mktemp("queues"),
        [str(TASK_MODULES / "queued.py")],
        # The real node is this machine (2 CPUs here): a small-1x pod's default request of
        # 0.375 CPU would fit 5 at once, and these tests run 6.
        operator_env={"PODTASK_CPU_REQUEST_RATIO": "0.1"} if cluster_kind == "real" else None,
        cluster_kind=cluster_kind,
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_two_hundred_runs_never_exceed_the_limit_and_keep_their_order(
    composed: ComposedStack,
) -> None:
    # A pod on the real node takes seconds to go through the scheduler and the node agent
    # (minutes for 200 at 3 at a time): fewer runs there, the same checks.
    count = 200 if composed.cluster_kind == "embedded" else 80
    ids = composed.batch("limited", [{"i": i} for i in range(count)])
    # Let some start, then a later, higher-priority run must overtake the waiting ones.
    wait_until(lambda: len(composed.created_in("limited")) >= 10, timeout=120)
    urgent = composed.trigger("limited", {"i": "urgent"}, priority=10)
    started_before_urgent = len(composed.created_in("limited"))

    runs = composed.wait_all([*ids, urgent], timeout=600)
    assert {r["status"]["phase"] for r in runs.values()} == {"Completed"}

    creations = composed.created_in("limited")
    assert len(creations) == count + 1
    assert composed.creation_gaps == 0  # each creation seen with the pods of its moment
    assert max(c.active_in_bucket for c in creations) <= 3
    order = [c.run for c in creations]
    assert [run for run in order if run != urgent] == ids  # within a priority: trigger order
    # The urgent run starts as soon as a slot frees: at most one slot's worth of runs that
    # were being admitted while it was triggered may go first.
    assert order.index(urgent) <= started_before_urgent + 3
    assert len(order) - order.index(urgent) > count * 3 // 4


def test_a_concurrency_key_has_the_limit_to_itself(composed: ComposedStack) -> None:
    # Runs long enough that all six slots are held at once even when pods are slow to start.
    ids = [
        composed.trigger("keyed", {"seconds": 4}, concurrencyKey=user)
        for _ in range(4)
        for user in ("ann", "bob", "cy")
    ]
    runs = composed.wait_all(ids, timeout=300)
    assert {r["status"]["phase"] for r in runs.values()} == {"Completed"}
    creations = composed.created_in("keyed")
    assert max(c.active_in_bucket for c in creations) <= 2
    assert max(sum(c.active_of_key.values()) for c in creations) == 6


def queue_row(composed: ComposedStack, name: str) -> list[str]:
    """The queue's row of `kubectl get taskqueues`: NAME LIMIT PAUSED RUNNING QUEUED AGE."""
    table = composed.kubectl("get", "taskqueues")
    return next(line.split() for line in table.splitlines() if line.split()[0] == name)


def test_a_queue_without_a_limit_shows_the_default_in_force(composed: ComposedStack) -> None:
    # `sleepy` declares no limit: kubectl's LIMIT column (the CRD's printer column, which the
    # apiserver prints) and `podtask queues` show the operator's default, not a blank.
    default = str(OperatorSettings.model_fields["default_concurrency_limit"].default)
    wait_until(lambda: queue_row(composed, "sleepy")[1] == default)
    assert queue_row(composed, "gated")[1] == "1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")}
    env |= {"PODTASK_API_URL": composed.api_url, "PODTASK_API_KEY": composed.api_key}
    done = subprocess.run(
        [sys.executable, "-m", "podtask._cli.cli", "queues"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    header, *rows = (line.split() for line in done.stdout.splitlines())
    assert header[:2] == ["NAME", "LIMIT"]
    limits = {row[0]: row[1] for row in rows}
    assert (limits["sleepy"], limits["gated"]) == (default, "1")


def test_patching_a_taskqueue_changes_its_limit_and_pause_at_once(
    composed: ComposedStack,
) -> None:
    def running() -> int:
        pods = composed.cluster.objects("pods", namespace="default")
        return sum(
            1
            for p in pods
            if (p["metadata"].get("labels") or {}).get("podtask.dev/queue") == "adjustable"
            and p["status"].get("phase") not in ("Succeeded", "Failed")
        )

    # Runs long enough that six overlap even when the machine is slow to start pods.
    ids = composed.batch("adjustable", [{"seconds": 6}] * 12)
    wait_until(lambda: running() == 3, timeout=60)
    composed.patch_queue("adjustable", {"concurrencyLimit": 6})
    # Six of the queue active at once, sampled or counted as a pod was created (a sample alone
    # can fall between two waves when the machine is slow to start pods).
    wait_until(
        lambda: (
            running() == 6
            or max(c.active_in_bucket for c in composed.created_in("adjustable")) == 6
        )
    )

    # From the moment the operator says it acts on the paused spec, nothing new starts.
    composed.patch_queue("adjustable", {"paused": True})
    created = len(composed.created_in("adjustable"))
    wait_until(lambda: running() == 0, timeout=60)
    assert len(composed.created_in("adjustable")) == created  # paused: nothing new started
    # LIMIT is the limit in force, which the operator writes on the queue's status.
    wait_until(lambda: queue_row(composed, "adjustable")[1:3] == ["6", "true"])

    composed.patch_queue("adjustable", {"paused": False})
    runs = composed.wait_all(ids, timeout=120)
    assert {r["status"]["phase"] for r in runs.values()} == {"Completed"}
    assert max(c.active_in_bucket for c in composed.created_in("adjustable")) <= 6

    def counts_settled() -> bool:
        row = next(
            line.split()
            for line in composed.kubectl("get", "taskqueues").splitlines()
            if line.startswith("adjustable")
        )
        return row[3:5] == ["0", "0"]

    wait_until(counts_settled)


def test_a_waiting_run_says_why(composed: ComposedStack, tmp_path: Path) -> None:
    composed.patch_queue("gated", {"paused": True})
    run_id = composed.trigger("gated", {})

    def waiting_condition() -> dict[str, str] | None:
        conditions = composed.run(run_id).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Waiting"), None)

    condition = wait_until(waiting_condition)
    assert composed.run(run_id)["status"] == "Queued"
    assert condition["reason"] == "QueuePaused"
    assert "queue 'gated'" in condition["message"] and "position 1" in condition["message"]
    events = composed.kubectl("get", "events", "--field-selector", f"involvedObject.name={run_id}")
    assert "QueuePaused" in events
    composed.patch_queue("gated", {"paused": False})
    assert composed.wait_for(run_id)["status"] == "Completed"


def test_the_longest_queue_name_is_paused_and_limited_by_its_taskqueue(
    composed: ComposedStack,
) -> None:
    # Its pods' label, the operator's bucket and its TaskQueue are one name: a pause and a
    # limit set on the TaskQueue apply to its runs, and its counts are written back to it.
    name = "long." + "q" * 53 + ".name"
    assert len(name) == MAX_QUEUE_NAME_LENGTH
    composed.patch_queue(name, {"paused": True})
    ids = composed.batch("long-queue", [{"seconds": 2}] * 4)

    def queued() -> int:
        queue = json.loads(composed.kubectl("get", "taskqueue", name, "-o", "json"))
        return int((queue.get("status") or {}).get("queued", 0))

    def waiting_reasons() -> list[str]:
        conditions = composed.run(ids[-1]).get("conditions") or []
        return [c["reason"] for c in conditions if c["type"] == "Waiting"]

    wait_until(lambda: queued() == 4, timeout=60)
    wait_until(lambda: waiting_reasons() == ["QueuePaused"])
    assert composed.created_in(name) == []

    composed.patch_queue(name, {"paused": False, "concurrencyLimit": 2})
    runs = composed.wait_all(ids, timeout=180)
    assert {r["status"]["phase"] for r in runs.values()} == {"Completed"}
    creations = composed.created_in(name)
    assert len(creations) == 4
    assert max(c.active_in_bucket for c in creations) == 2  # the TaskQueue's 2, not the 1 declared
