"""The operator's metrics: the pure measures, each fact counted once where it is written (the
reconciler driven over the in-memory cluster, as in test_run_reconciler), and the scrape."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from podtask._contract.resources import RunPhase, TaskRunSpec, TaskRunStatus
from podtask._contract.wire import LABEL_QUEUE, LABEL_RUN, LABEL_TASK
from podtask_operator import metrics
from podtask_operator.admission import QueueControls
from podtask_operator.health import HealthAddress, OperatorHealth, WatchHeartbeat, serve_health
from podtask_operator.reconcile import RunReconciler
from podtask_operator.scheduler import Scheduler
from podtask_operator.settings import OperatorSettings
from tests.operator.memory_cluster import MemoryCluster

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def _spec(task: str, **changes: Any) -> TaskRunSpec:
    return TaskRunSpec.model_validate(
        {
            "taskId": task,
            "version": "1",
            "image": "registry.example/tasks:1",
            "module": "tasks",
            "machine": "micro",
            "queue": {"name": f"{task}-queue", "concurrencyLimit": 1},
            "retry": {"maxAttempts": 2, "minTimeoutMs": 1000, "maxTimeoutMs": 1000},
            **changes,
        }
    )


def _pod(name: str, created: str | None, started: str | None, task: str = "t") -> dict[str, Any]:
    state = {"running": {"startedAt": started}} if started else {"waiting": {}}
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {LABEL_TASK: task, LABEL_RUN: name.rsplit("-", 1)[0]},
        },
        "status": {"containerStatuses": [{"name": "task", "state": state}]},
    }


# --- pure -----------------------------------------------------------------------------------


def test_queue_wait_counts_from_the_trigger_or_the_end_of_the_delay() -> None:
    admitted = T0 + timedelta(seconds=90)
    assert metrics.queue_wait_seconds(_spec("w"), T0, admitted) == 90
    triggered = _spec("w", triggeredAt=(T0 + timedelta(seconds=30)).isoformat())
    assert metrics.queue_wait_seconds(triggered, T0, admitted) == 60
    delayed = _spec("w", delayUntil=(T0 + timedelta(seconds=80)).isoformat())
    assert metrics.queue_wait_seconds(delayed, T0, admitted) == 10
    # A clock that disagrees never makes a negative wait.
    assert metrics.queue_wait_seconds(_spec("w"), admitted, T0) == 0


def test_run_duration_is_from_the_first_start_to_the_end() -> None:
    done = TaskRunStatus(
        phase=RunPhase.COMPLETED, started_at=T0, finished_at=T0 + timedelta(seconds=7.5)
    )
    assert metrics.run_duration_seconds(done) == 7.5
    never_started = TaskRunStatus(phase=RunPhase.EXPIRED, finished_at=T0)
    assert metrics.run_duration_seconds(never_started) is None


def test_pod_start_is_from_its_creation_to_its_container_start() -> None:
    assert metrics.pod_start_seconds(_pod("r-1", "2026-01-01T00:00:00Z", None)) is None
    started = _pod("r-1", "2026-01-01T00:00:00Z", "2026-01-01T00:00:04Z")
    assert metrics.pod_start_seconds(started) == 4
    ended = _pod("r-1", "2026-01-01T00:00:00Z", None)
    ended["status"]["containerStatuses"][0]["state"] = {
        "terminated": {"startedAt": "2026-01-01T00:00:02Z", "exitCode": 0}
    }
    assert metrics.pod_start_seconds(ended) == 2


def test_each_pod_start_is_observed_once_and_not_those_before_this_replica_led() -> None:
    starts = metrics.PodStarts()
    count = "podtask_pod_start_latency_seconds_count"
    before = value(count, task="once")
    # Started before this replica began leading: its predecessor's to observe.
    starts.known(_pod("old-1", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "once"))
    starts.changed(_pod("old-1", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "once"))
    # Listed before it started: observed once it does, once only.
    starts.known(_pod("new-1", "2026-01-01T00:00:00Z", None, "once"))
    starts.changed(_pod("new-1", "2026-01-01T00:00:00Z", None, "once"))
    assert value(count, task="once") == before
    for _ in range(3):
        starts.changed(_pod("new-1", "2026-01-01T00:00:00Z", "2026-01-01T00:00:03Z", "once"))
    assert value(count, task="once") == before + 1
    assert value("podtask_pod_start_latency_seconds_sum", task="once") >= 3
    starts.changed(_pod("new-1", "2026-01-01T00:00:00Z", None, "once"), deleted=True)
    assert value(count, task="once") == before + 1


def test_the_queue_gauges_read_the_scheduler() -> None:
    scheduler = Scheduler(default_limit=10)
    scheduler.enqueue("a", _spec("gauges"), "2026-01-01T00:00:00Z")
    scheduler.enqueue("b", _spec("gauges"), "2026-01-01T00:00:01Z")
    pod = {"metadata": {"name": "c-1", "labels": {LABEL_QUEUE: "gauges-queue"}}, "status": {}}
    scheduler.observe_pod(pod)
    scheduler.set_controls("idle", QueueControls(concurrency_limit=4))
    gauges = metrics.QueueGauges()
    gauges.follow(scheduler)
    samples = {
        (family.name, sample.labels["queue"]): sample.value
        for family in gauges.collect()
        for sample in family.samples
    }
    assert samples == {
        ("podtask_queue_running", "gauges-queue"): 1,
        ("podtask_queue_waiting", "gauges-queue"): 2,
        ("podtask_queue_limit", "gauges-queue"): 1,
        ("podtask_queue_running", "idle"): 0,
        ("podtask_queue_waiting", "idle"): 0,
        ("podtask_queue_limit", "idle"): 4,
    }


# --- counted where written ------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_run_its_attempts_and_its_admissions_are_counted_once(
    settings: OperatorSettings,
) -> None:
    cluster = MemoryCluster()
    now = [T0]
    reconciler = RunReconciler(cluster, settings, clock=lambda: now[0], random=lambda: 0)
    task, queue = "counted", "counted-queue"
    before = {
        "completed": value("podtask_runs_finished_total", task=task, status="Completed"),
        "crashed": value("podtask_attempts_total", task=task, outcome="Crashed"),
        "succeeded": value("podtask_attempts_total", task=task, outcome="Succeeded"),
        "admissions": value("podtask_admissions_total", queue=queue),
        "waits": value("podtask_run_queue_wait_seconds_count", task=task),
        "durations": value("podtask_run_duration_seconds_count", task=task),
    }
    cluster.add_run("r", _spec(task), T0)
    now[0] = T0 + timedelta(seconds=5)
    await reconciler.run_changed("r")
    assert cluster.created_pods == ["r-1"]
    # The first attempt crashes: a retry after the backoff, admitted again.
    cluster.pod_ends("r-1", exit_code=1)
    await reconciler.pod_changed((await cluster.get_pod("r-1")) or {})
    now[0] += timedelta(seconds=2)
    await reconciler.run_changed("r")
    assert cluster.created_pods == ["r-1", "r-2"]
    cluster.report("r", {"attempt": 2, "ok": True, "output": 1})
    cluster.pod_ends("r-2", exit_code=0)
    pod = (await cluster.get_pod("r-2")) or {}
    await reconciler.pod_changed(pod)
    assert cluster.status("r")["phase"] == "Completed"
    # Events seen again (a restart's listing, a late watch event) count nothing more.
    await reconciler.pod_changed(pod)
    await reconciler.run_changed("r")
    await reconciler.rebuild()

    assert value("podtask_runs_finished_total", task=task, status="Completed") == (
        before["completed"] + 1
    )
    assert value("podtask_attempts_total", task=task, outcome="Crashed") == before["crashed"] + 1
    assert value("podtask_attempts_total", task=task, outcome="Succeeded") == (
        before["succeeded"] + 1
    )
    assert value("podtask_admissions_total", queue=queue) == before["admissions"] + 2
    # The queue wait of its first admission only: 5 s after its creation.
    assert value("podtask_run_queue_wait_seconds_count", task=task) == before["waits"] + 1
    assert value("podtask_run_duration_seconds_count", task=task) == before["durations"] + 1
    reconciler.forget("r")


@pytest.mark.anyio
async def test_a_run_the_api_completed_with_its_report_is_settled_once_its_pod_ends(
    settings: OperatorSettings,
) -> None:
    """The report of success and the final status are one write (the API's); the operator
    writes nothing more, but posts the run's Event and counts it when the pod ends, once."""
    cluster = MemoryCluster()
    reconciler = RunReconciler(cluster, settings, clock=lambda: T0, random=lambda: 0)
    task = "settled"
    before = {
        "completed": value("podtask_runs_finished_total", task=task, status="Completed"),
        "succeeded": value("podtask_attempts_total", task=task, outcome="Succeeded"),
    }
    cluster.add_run("s", _spec(task), T0)
    await reconciler.run_changed("s")
    assert cluster.status("s")["phase"] == "Executing"
    writes = cluster.status_writes
    cluster.report_through_api("s", {"attempt": 1, "ok": True, "output": 7}, T0)
    await reconciler.run_changed("s")  # the watch event of the report: final, nothing to do
    assert cluster.status("s")["phase"] == "Completed" and cluster.events == []
    cluster.pod_ends("s-1", exit_code=0)
    pod = (await cluster.get_pod("s-1")) or {}
    await reconciler.pod_changed(pod)
    await reconciler.pod_changed(pod)  # seen again (a relist): nothing more
    await reconciler.rebuild()

    assert cluster.status_writes == writes + 1  # the API's one write
    assert cluster.events == [("s", "Normal", "Completed")]
    assert cluster.status("s")["output"] == 7
    assert value("podtask_runs_finished_total", task=task, status="Completed") == (
        before["completed"] + 1
    )
    assert value("podtask_attempts_total", task=task, outcome="Succeeded") == (
        before["succeeded"] + 1
    )


@pytest.mark.anyio
async def test_a_run_ended_here_is_not_settled_again_when_its_pod_ends(
    settings: OperatorSettings,
) -> None:
    """A cancel that finds the report of success completes the run here, pod still running:
    the pod's end then posts and counts nothing more."""
    cluster = MemoryCluster()
    reconciler = RunReconciler(cluster, settings, clock=lambda: T0, random=lambda: 0)
    task = "ended-here"
    completed = value("podtask_runs_finished_total", task=task, status="Completed")
    cluster.add_run("e", _spec(task), T0)
    await reconciler.run_changed("e")
    cluster.report("e", {"attempt": 1, "ok": True, "output": 1})  # as an older API wrote it
    cluster.cancel("e", T0)
    await reconciler.run_changed("e")
    assert cluster.status("e")["phase"] == "Completed"
    cluster.pod_ends("e-1", exit_code=0)
    await reconciler.pod_changed((await cluster.get_pod("e-1")) or {})
    assert cluster.events == [("e", "Normal", "Completed")]
    assert value("podtask_runs_finished_total", task=task, status="Completed") == completed + 1


@pytest.mark.anyio
async def test_a_cancel_ends_the_running_attempt_as_canceled(settings: OperatorSettings) -> None:
    cluster = MemoryCluster()
    reconciler = RunReconciler(cluster, settings, clock=lambda: T0, random=lambda: 0)
    task = "canceled-metrics"
    canceled = value("podtask_attempts_total", task=task, outcome="Canceled")
    finished = value("podtask_runs_finished_total", task=task, status="Canceled")
    cluster.add_run("c", _spec(task), T0)
    await reconciler.run_changed("c")
    cluster.cancel("c", T0)
    await reconciler.run_changed("c")
    await reconciler.run_changed("c")
    assert cluster.status("c")["phase"] == "Canceled"
    assert value("podtask_attempts_total", task=task, outcome="Canceled") == canceled + 1
    assert value("podtask_runs_finished_total", task=task, status="Canceled") == finished + 1
    reconciler.forget("c")


# --- the scrape -----------------------------------------------------------------------------


@pytest.mark.component
def test_the_health_port_serves_the_metrics_as_prometheus_parses_them() -> None:
    health = OperatorHealth(WatchHeartbeat(), stall_seconds=60)

    async def scrape() -> str:
        server = await serve_health(health, HealthAddress("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            response = await reader.read()
            writer.close()
        finally:
            server.close()
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.split()[1] == b"200" and b"text/plain" in head
        return body.decode()

    families = {f.name: f for f in text_string_to_metric_families(asyncio.run(scrape()))}
    for name in (
        "podtask_runs_finished",
        "podtask_attempts",
        "podtask_run_duration_seconds",
        "podtask_run_queue_wait_seconds",
        "podtask_pod_start_latency_seconds",
        "podtask_admissions",
        "podtask_kube_requests",
        "podtask_operator_leader",
        "podtask_queue_running",
        "podtask_queue_waiting",
        "podtask_queue_limit",
        "process_cpu_seconds",
    ):
        assert name in families, name
