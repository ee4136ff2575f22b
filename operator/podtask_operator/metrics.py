"""The operator's Prometheus metrics: their definitions, the registry its health port serves on
`/metrics` (`health.serve_health`), and the few recording calls the doing layers make.

Each fact is counted where the operator acts on it, once: a run finished when its final status
is written (`run_writes`), an attempt when its end is written (`reconcile`), the queue wait
when a run's first attempt is recorded (`attempt_start`), an admission when a run took a slot.
A write refused because the run changed (`RunChanged`) counts nothing: the decision is taken
again from a fresh read. So a restarted operator, or a new leader, does not count again what
its predecessor wrote. Pod start latency is read from pods as the watch shows them, once per
pod: the pods already started when this replica began leading are its predecessor's
(`PodStarts.known`). The queue gauges are read from the scheduler's state when scraped, and
the Kubernetes API requests as `kube.Kube` sends them (`podtask._control.kube_requests` names
their verb and resource).

A standby serves the same registry: its leader gauge is 0 and it has counted nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from podtask._contract.resources import TaskRunSpec, TaskRunStatus, parse_timestamp
from podtask._contract.wire import LABEL_TASK
from podtask._control.kube_requests import KubeRequest
from podtask_operator.pending_pods import execution_started_at

if TYPE_CHECKING:
    from podtask_operator.scheduler import Scheduler

METRICS_PATH = "/metrics"

# The operator's own registry (its process's metrics too), apart from the API's: a test or a
# tool that imports both serves each its own.
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Seconds, from a quick task to a long job.
RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
# Seconds a run waits for a slot: mostly short, hours when a queue is backed up.
WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
# Seconds from a pod's creation to its container's start: scheduling, pulling, creating.
# Kubernetes stamps both in whole seconds, so the finest buckets are seconds.
POD_START_BUCKETS = (0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)

RUNS_FINISHED = Counter(
    "podtask_runs_finished",
    "Runs that reached a final status, by task and status (Completed, Failed, Crashed, "
    "Canceled, Expired, TimedOut, SystemFailure).",
    ["task", "status"],
    registry=REGISTRY,
)
ATTEMPTS = Counter(
    "podtask_attempts",
    "Attempts that ended, by task and outcome (what classify_attempt read from the pod and the "
    "report: Succeeded, Failed, Aborted, OutOfMemory, TimedOut, Crashed, Lost, NotStarted; or "
    "Canceled, when the run's cancel stopped it).",
    ["task", "outcome"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "podtask_run_duration_seconds",
    "From a run's first attempt's start to its final status, by task (runs that never started "
    "are not observed).",
    ["task"],
    buckets=RUN_BUCKETS,
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    "podtask_run_queue_wait_seconds",
    "From a run's trigger (or the end of its delay) to its first admission, by task.",
    ["task"],
    buckets=WAIT_BUCKETS,
    registry=REGISTRY,
)
POD_START_LATENCY = Histogram(
    "podtask_pod_start_latency_seconds",
    "From an attempt's pod's creation to its container's start (the pod's own timestamps, "
    "whole seconds), by task; once per pod.",
    ["task"],
    buckets=POD_START_BUCKETS,
    registry=REGISTRY,
)
ADMISSIONS = Counter(
    "podtask_admissions",
    "Runs admitted to a slot of their queue (a first start, a retry, or a resume after a wait).",
    ["queue"],
    registry=REGISTRY,
)
KUBE_REQUESTS = Counter(
    "podtask_kube_requests",
    "The operator's HTTP requests to the Kubernetes API (not kopf's watches), by verb, "
    "resource and answer code ('error': none).",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "podtask_operator_leader",
    "1 while this replica leads (acts on runs), 0 while it stands by for the Lease.",
    registry=REGISTRY,
)


# --- pure -----------------------------------------------------------------------------------


def run_duration_seconds(status: TaskRunStatus) -> float | None:
    """A finished run's time from its first attempt's start to its end; None if it never
    started."""
    if status.started_at is None or status.finished_at is None:
        return None
    return max(0.0, (status.finished_at - status.started_at).total_seconds())


def queue_wait_seconds(spec: TaskRunSpec, created: datetime, admitted: datetime) -> float:
    """How long a run waited for its first admission: from its trigger (its `triggeredAt`,
    else its creation), or from the end of its delay when it had one (a delayed run is not in
    line before then)."""
    since = spec.triggered_at or created
    if spec.delay_until is not None:
        since = max(since, spec.delay_until)
    return max(0.0, (admitted - since).total_seconds())


def pod_start_seconds(pod: Mapping[str, Any]) -> float | None:
    """From the pod's creation to its first container's start; None until one started."""
    started = execution_started_at(pod)
    created = parse_timestamp((pod.get("metadata") or {}).get("creationTimestamp"))
    if started is None or created is None:
        return None
    return max(0.0, (started - created).total_seconds())


def _task_of(labels: Mapping[str, Any] | None) -> str:
    return str((labels or {}).get(LABEL_TASK) or "")


# --- recording (called by the doing layers) -------------------------------------------------


def run_finished(run: Mapping[str, Any], status: TaskRunStatus) -> None:
    """The operator wrote `status`, a final one, on `run`."""
    task = str((run.get("spec") or {}).get("taskId") or "")
    RUNS_FINISHED.labels(task=task, status=str(status.phase or "")).inc()
    duration = run_duration_seconds(status)
    if duration is not None:
        RUN_DURATION.labels(task=task).observe(duration)


def attempt_ended(task: str, outcome: str) -> None:
    ATTEMPTS.labels(task=task, outcome=outcome).inc()


def first_admission(spec: TaskRunSpec, created: datetime, admitted: datetime) -> None:
    """The run's first attempt was recorded, started at `admitted`."""
    QUEUE_WAIT.labels(task=spec.task_id).observe(queue_wait_seconds(spec, created, admitted))


def admitted(queue: str) -> None:
    ADMISSIONS.labels(queue=queue).inc()


def report_kube_request(request: KubeRequest, code: str) -> None:
    """Count one request the operator sent, with its answer's code (`kube.Kube` reports each)."""
    KUBE_REQUESTS.labels(verb=request.verb, resource=request.resource, code=code).inc()


# Pods whose start was observed (or was before this replica led), remembered so that each is
# observed once; oldest forgotten first.
_POD_MEMORY = 20_000


class PodStarts:
    """Observes each attempt pod's start latency once, as pod events show it started."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()

    def _remember(self, name: str) -> None:
        self._seen[name] = None
        if len(self._seen) > _POD_MEMORY:
            self._seen.popitem(last=False)

    def known(self, pod: Mapping[str, Any]) -> None:
        """A pod listed at start-up: if it started, that start was observed before (or by a
        predecessor), not to be observed again."""
        if execution_started_at(pod) is not None:
            self._remember(pod["metadata"]["name"])

    def changed(self, pod: Mapping[str, Any], *, deleted: bool = False) -> None:
        name = pod["metadata"]["name"]
        if deleted:
            self._seen.pop(name, None)
            return
        if name in self._seen:
            return
        seconds = pod_start_seconds(pod)
        if seconds is None:
            return
        self._remember(name)
        POD_START_LATENCY.labels(task=_task_of(pod["metadata"].get("labels"))).observe(seconds)


class QueueGauges(Collector):
    """`podtask_queue_running`, `_waiting` and `_limit` per queue, read from the scheduler the
    reconciler follows at the moment of the scrape (the same numbers `queue_status` writes on
    each TaskQueue, without waiting for that write)."""

    def __init__(self) -> None:
        self._scheduler: Scheduler | None = None

    def follow(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        running, waiting, limit = self._families()
        scheduler = self._scheduler
        for queue in sorted(scheduler.queues() if scheduler is not None else ()):
            assert scheduler is not None
            active, queued = scheduler.counts(queue)
            running.add_metric([queue], active)
            waiting.add_metric([queue], queued)
            limit.add_metric([queue], scheduler.limit(queue))
        return iter((running, waiting, limit))

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "podtask_queue_running",
                "Slots of the queue held by running attempts (all its concurrency keys).",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                "podtask_queue_waiting",
                "Runs waiting in the queue's line for a slot.",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                "podtask_queue_limit",
                "The concurrency limit in force (per concurrency key): the queue's own, else "
                "the one its runs declare, else the operator's default.",
                labels=["queue"],
            ),
        )


QUEUE_GAUGES = QueueGauges()
REGISTRY.register(QUEUE_GAUGES)
