"""What housekeeping deletes, and when: pure decisions over pods and TaskRuns as listed."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podtask._contract.batch_markers import LABEL_BATCH, new_marker, owner_reference, read_marker
from podtask._contract.wire import LABEL_RUN
from podtask_operator.housekeeping import (
    Doomed,
    marker_due_for_deletion,
    plan_marker_sweep,
    plan_sweep,
    pod_due_for_deletion,
    pod_finished_at,
    run_due_for_deletion,
    run_finished_at,
    runs_per_batch,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def stamp(ago: timedelta) -> str:
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    phase: str = "Succeeded",
    finished_ago: timedelta | None = 2 * HOUR,
    run: str = "run-1",
    name: str = "",
    **status: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "task", "state": {"running": {}}}
    if finished_ago is not None:
        container["state"] = {"terminated": {"exitCode": 0, "finishedAt": stamp(finished_ago)}}
    return {
        "metadata": {
            "name": name or f"{run}-1",
            "uid": f"uid-{name or run}",
            "labels": {LABEL_RUN: run},
            "creationTimestamp": stamp(10 * HOUR),
        },
        "status": {"phase": phase, "containerStatuses": [container], **status},
    }


def run(
    phase: str = "Completed", finished_ago: timedelta | None = 2 * HOUR, name: str = "run-1"
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if finished_ago is not None:
        status["finishedAt"] = stamp(finished_ago)
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": stamp(10 * HOUR)},
        "status": status,
    }


# --------------------------------------------------------------------------------- pods


def test_a_pod_finishes_when_its_last_container_does() -> None:
    the_pod = pod()
    the_pod["status"]["containerStatuses"].append(
        {"name": "sidecar", "state": {"terminated": {"finishedAt": stamp(HOUR)}}}
    )
    assert pod_finished_at(the_pod) == NOW - HOUR


def test_a_pod_without_a_terminated_container_finished_at_its_last_condition() -> None:
    evicted = pod(
        "Failed",
        finished_ago=None,
        reason="Evicted",
        conditions=[
            {"type": "PodScheduled", "lastTransitionTime": stamp(5 * HOUR)},
            {"type": "Ready", "lastTransitionTime": stamp(3 * HOUR)},
        ],
    )
    evicted["status"]["containerStatuses"] = []
    assert pod_finished_at(evicted) == NOW - 3 * HOUR
    evicted["status"]["conditions"] = []
    assert pod_finished_at(evicted) == NOW - 10 * HOUR  # last resort: its creation


@pytest.mark.parametrize("phase", ["Pending", "Running", "Unknown"])
def test_an_unfinished_pod_has_no_finish_time(phase: str) -> None:
    assert pod_finished_at(pod(phase)) is None


@pytest.mark.parametrize(
    ("the_pod", "the_run", "due"),
    [
        (pod(finished_ago=2 * HOUR), run(), True),
        (pod("Failed", finished_ago=2 * HOUR), run("Failed"), True),
        (pod(finished_ago=HOUR), run(), True),  # exactly at the retention
        (pod(finished_ago=HOUR - timedelta(seconds=1)), run(), False),  # logs still readable
        # Never a pod of a run that is not final: the operator still needs it.
        (pod(finished_ago=5 * HOUR), run("Executing", None), False),
        (pod(finished_ago=5 * HOUR), run("WaitingToRetry", None), False),
        (pod(finished_ago=5 * HOUR), None, False),  # its run unseen
        # Never a pod that is still running, even of a final run.
        (pod("Running", finished_ago=None), run("Canceled"), False),
        (pod("Pending", finished_ago=None), run("TimedOut"), False),
    ],
)
def test_pod_due_for_deletion(
    the_pod: dict[str, Any], the_run: dict[str, Any] | None, due: bool
) -> None:
    assert pod_due_for_deletion(the_pod, the_run, NOW, HOUR) is due


def test_a_pod_already_being_deleted_is_left_alone() -> None:
    the_pod = pod(finished_ago=5 * HOUR)
    the_pod["metadata"]["deletionTimestamp"] = stamp(timedelta(0))
    assert not pod_due_for_deletion(the_pod, run(), NOW, HOUR)


# --------------------------------------------------------------------------------- runs


@pytest.mark.parametrize(
    ("the_run", "due"),
    [
        (run("Completed", 8 * 24 * HOUR), True),
        (run("SystemFailure", 7 * 24 * HOUR), True),
        (run("Expired", 6 * 24 * HOUR), False),
        (run("Executing", None), False),
        (run("Queued", None), False),
        (run("Failed", None), False),  # no finishedAt: counts from its creation, 10 h ago
    ],
)
def test_run_due_for_deletion(the_run: dict[str, Any], due: bool) -> None:
    assert run_due_for_deletion(the_run, NOW, 7 * 24 * HOUR) is due


def test_a_final_run_without_finished_at_counts_from_its_creation() -> None:
    assert run_finished_at(run("Failed", None)) == NOW - 10 * HOUR
    assert run_finished_at(run("Executing", None)) is None
    assert run_due_for_deletion(run("Failed", None), NOW, 9 * HOUR)


# --------------------------------------------------------------------------------- sweeps


def test_a_sweep_deletes_due_runs_and_the_due_pods_of_kept_runs() -> None:
    runs = [
        run("Completed", 3 * HOUR, name="old"),
        run("Completed", 2 * HOUR, name="recent"),
        run("Executing", None, name="live"),
    ]
    pods = [
        pod(run="old", name="old-1"),  # goes with its run
        pod(run="recent", name="recent-1"),
        pod(run="recent", name="recent-2", finished_ago=timedelta(minutes=5)),
        pod(run="live", name="live-1", finished_ago=5 * HOUR),
        pod(run="gone", name="gone-1", finished_ago=5 * HOUR),
    ]
    plan = plan_sweep(
        runs, pods, NOW, pod_retention=HOUR, run_retention=timedelta(hours=2, minutes=30)
    )
    assert plan.runs == [Doomed("old", "uid-old")]
    assert plan.pods == [Doomed("recent-1", "uid-recent-1")]


def _marker(state: str, age: timedelta, uid: str) -> dict[str, Any]:
    body = new_marker(uid, "s", 1, ["t"], "d", NOW - age)
    body["metadata"] = {**body["metadata"], "uid": uid, "resourceVersion": f"v-{uid}"}
    body["data"] = {**body["data"], "state": state}
    return body


def _batch_run(marker_body: dict[str, Any]) -> dict[str, Any]:
    found = read_marker(marker_body)
    assert found is not None
    return {
        "metadata": {
            "name": f"run-{found.uid}",
            "labels": {LABEL_BATCH: found.batch_id},
            "ownerReferences": [owner_reference(found)],
        }
    }


def test_abandoned_batches_and_spent_markers_are_deleted_young_ones_never() -> None:
    abandon = timedelta(minutes=10)
    old = timedelta(minutes=11)
    young = timedelta(minutes=1)
    abandoned = _marker("open", old, "a1")
    being_made = _marker("open", young, "a2")
    live = _marker("committed", old, "c1")
    spent = _marker("committed", old, "c2")
    just_committed = _marker("committed", young, "c3")
    markers = [abandoned, being_made, live, spent, just_committed]
    runs = [_batch_run(abandoned), _batch_run(being_made), _batch_run(live)]
    doomed = plan_marker_sweep(markers, runs_per_batch(runs), NOW, abandon)
    # Pinned to the version seen open: a batch committed since survives its deletion.
    assert doomed == [
        Doomed("podtask-batch-a1", "a1", "v-a1"),
        Doomed("podtask-batch-c2", "c2", "v-c2"),
    ]
    assert marker_due_for_deletion(read_marker(abandoned), 1, NOW, abandon)  # type: ignore[arg-type]
