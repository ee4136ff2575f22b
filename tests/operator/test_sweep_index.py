"""The sweep index: housekeeping decides from slim copies of what the watches showed exactly
as it would from the objects themselves, and keeps only the objects a rule can concern."""

from datetime import timedelta

from podtask_operator.housekeeping import plan_marker_sweep, plan_sweep
from podtask_operator.sweep_index import SweepIndex, slim_pod, slim_run
from tests.operator.test_housekeeping import HOUR, NOW, _batch_run, _marker, pod, run


def test_slim_copies_plan_the_same_sweep_as_the_whole_objects() -> None:
    runs = [
        run("Completed", 3 * HOUR, name="old"),
        run("Completed", 2 * HOUR, name="recent"),
        run("Failed", None, name="unstamped"),
    ]
    pods = [
        pod(run="old", name="old-1"),
        pod(run="recent", name="recent-1"),
        pod(run="recent", name="recent-2", finished_ago=timedelta(minutes=5)),
        pod(run="gone", name="gone-1", finished_ago=5 * HOUR),
        pod(
            "Failed",
            None,
            run="recent",
            name="evicted-1",
            conditions=[{"type": "Ready", "lastTransitionTime": "2026-01-01T07:00:00Z"}],
        ),
    ]
    slim_runs = [slim_run(r) for r in runs]
    slim_pods = [slim_pod(p) for p in pods]
    assert None not in slim_runs and None not in slim_pods
    for retention in (timedelta(0), HOUR, 4 * HOUR):
        assert plan_sweep(
            slim_runs,  # type: ignore[arg-type]
            slim_pods,  # type: ignore[arg-type]
            NOW,
            pod_retention=retention,
            run_retention=retention,
        ) == plan_sweep(runs, pods, NOW, pod_retention=retention, run_retention=retention)


def test_a_batch_run_is_kept_while_it_runs_so_its_marker_stays() -> None:
    spent, live = (
        _marker("committed", 11 * timedelta(minutes=1), "c1"),
        _marker("committed", 11 * timedelta(minutes=1), "c2"),
    )
    batch_run = {**_batch_run(live), "status": {"phase": "Executing"}}
    index = SweepIndex()
    index.observe_run(batch_run)
    assert plan_marker_sweep([spent, live], index.runs(), NOW, timedelta(minutes=10)) == (
        plan_marker_sweep([spent, live], [batch_run], NOW, timedelta(minutes=10))
    )
    assert [
        d.uid for d in plan_marker_sweep([live], index.runs(), NOW, timedelta(minutes=10))
    ] == []
    index.observe_run(batch_run, deleted=True)
    assert index.runs() == []


def test_only_what_a_rule_concerns_is_kept() -> None:
    index = SweepIndex()
    index.observe_run(run("Executing", None, name="live"))
    index.observe_pod(pod("Running", None, run="live", name="live-1"))
    assert index.runs() == [] and index.pods() == []
    index.observe_run(run("Completed", HOUR, name="live"))
    index.observe_pod(pod("Succeeded", HOUR, run="live", name="live-1"))
    assert [r["metadata"]["name"] for r in index.runs()] == ["live"]
    assert [p["metadata"]["name"] for p in index.pods()] == ["live-1"]
    index.observe_pod(pod(run="live", name="live-1"), deleted=True)
    index.forget_run("live")
    assert index.runs() == [] and index.pods() == []
