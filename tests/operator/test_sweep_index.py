"""The sweep index: housekeeping decides from slim copies of what the watches showed exactly
as it would from the objects themselves, and keeps only the objects a rule can concern."""

from datetime import timedelta

from podtask_operator.housekeeping import plan_marker_sweep, plan_sweep, runs_per_batch
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
    index = SweepIndex()
    for each in runs:
        index.observe_run(each)
    for each in pods:
        index.observe_pod(each)
    assert [slim_run(r) for r in runs] == index.runs()
    assert [slim_pod(p) for p in pods] == index.pods()
    for retention in (timedelta(0), HOUR, 4 * HOUR):
        assert plan_sweep(
            index.runs(), index.pods(), NOW, pod_retention=retention, run_retention=retention
        ) == plan_sweep(runs, pods, NOW, pod_retention=retention, run_retention=retention)


def test_it_counts_the_runs_each_batch_has_left() -> None:
    old, abandon = timedelta(minutes=11), timedelta(minutes=10)
    markers = [_marker("committed", old, "c1"), _marker("committed", old, "c2")]
    executing = {**_batch_run(markers[0]), "status": {"phase": "Executing"}}
    completed = {**_batch_run(markers[1]), "status": {"phase": "Completed"}}
    index = SweepIndex()
    for each in (executing, completed, executing):  # an event again changes nothing
        index.observe_run(each)
    assert index.runs_per_batch() == runs_per_batch([executing, completed]) == {"c1": 1, "c2": 1}
    assert plan_marker_sweep(markers, index.runs_per_batch(), NOW, abandon) == []
    index.observe_run(completed, deleted=True)
    index.forget_run(executing["metadata"]["name"])
    assert index.runs_per_batch() == {}
    assert len(plan_marker_sweep(markers, index.runs_per_batch(), NOW, abandon)) == 2


def test_only_what_a_rule_concerns_is_kept() -> None:
    index = SweepIndex()
    index.observe_run(run("Executing", None, name="live"))
    index.observe_pod(pod("Running", None, run="live", name="live-1"))
    assert index.runs() == [] and index.pods() == [] and index.runs_per_batch() == {}
    index.observe_run(run("Completed", HOUR, name="live"))
    index.observe_pod(pod("Succeeded", HOUR, run="live", name="live-1"))
    assert [r["metadata"]["name"] for r in index.runs()] == ["live"]
    assert [p["metadata"]["name"] for p in index.pods()] == ["live-1"]
    index.observe_pod(pod(run="live", name="live-1"), deleted=True)
    index.forget_run("live")
    assert index.runs() == [] and index.pods() == []
