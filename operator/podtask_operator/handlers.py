"""kopf handlers: they only dispatch watch events, of runs, pods, queues and batch markers to
the `RunReconciler`, of schedules to the `ScheduleTicker`."""

from __future__ import annotations

import logging
import random
from typing import Any

import kopf

from podtask._contract.batch_markers import LABEL_BATCH
from podtask._contract.wire import (
    GROUP,
    LABEL_RUN,
    TASK_QUEUES,
    TASK_RUNS,
    TASK_SCHEDULES,
    VERSION,
)
from podtask_operator.cluster import RUN_PAGE, Cluster
from podtask_operator.health import WATCH_HEARTBEAT, OperatorHealth
from podtask_operator.kube_login import KubeLogin
from podtask_operator.reconcile import RunReconciler
from podtask_operator.schedule_ticker import ScheduleTicker
from podtask_operator.settings import OperatorSettings
from podtask_operator.sweep_index import SweepIndex

# Where `python -m podtask_operator` puts its `OperatorSettings` in kopf's memo: read once, at
# start, and used by the health endpoint, the Lease, housekeeping and these handlers alike.
SETTINGS_MEMO_KEY = "operator_settings"
# Where it puts the `SweepIndex` its housekeeping sweeps from: the handlers feed it.
SWEEP_INDEX_MEMO_KEY = "sweep_index"
LOGIN_MEMO_KEY = "kube_login"
# Where it puts its `OperatorHealth`: told when the start-up below is done (`/readyz`).
HEALTH_MEMO_KEY = "operator_health"
# How long kopf keeps an object's worker waiting for the object's next event (its default: 5 s).
WORKER_IDLE_SECONDS = 0.5


def _sweep_index(memo: kopf.Memo) -> SweepIndex:
    index: SweepIndex = memo[SWEEP_INDEX_MEMO_KEY]
    return index


class NoDiffBase(kopf.DiffBaseStorage):
    """No last-handled state: the handlers here are event handlers only, which no diff
    concerns. kopf would otherwise deep-copy each object's body on every watch event to diff
    it (a TaskRun's payload, a pod's spec) and throw the copy away."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    # The operator's own, not kopf's default (the official client's, which would import it).
    kube_login: KubeLogin = memo[LOGIN_MEMO_KEY]
    return kube_login.for_kopf()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Only event handlers: kopf keeps no per-object progress, so it writes nothing of its own.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.WARNING
    # One namespace, known at start: no need to follow namespaces and CRDs cluster-wide. Left
    # on, kopf would list them, and under a namespaced Role (the chart's default) retry the 403
    # for about a minute before serving anything.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    # Of the namespace's ConfigMaps only batch markers concern the operator: selected by the
    # API server, so that others (the attempts' logs, written as tasks print) are not sent.
    # (kopf releases before server-side selectors filter on the handler's labels only.)
    selectors = getattr(settings.watching, "label_selectors", None)
    if selectors is not None:
        selectors["configmaps"] = LABEL_BATCH
    settings.watching.client_timeout = 330
    # Each watch starts with a list of what exists: in pages, as `rebuild` lists the runs, so
    # that a restart with 10,000 TaskRuns does not parse one answer of tens of MB at once.
    settings.watching.chunk_size = RUN_PAGE
    # kopf keeps a worker per object for a while after its last event, holding that event's
    # whole body: after a burst of 10,000 TaskRuns (or their pods), thousands of them at once,
    # tens of MB. The handlers here keep no per-object state, so a worker started again for
    # the object's next event costs only a task.
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    operator_settings: OperatorSettings = memo[SETTINGS_MEMO_KEY]
    cluster = Cluster(memo[LOGIN_MEMO_KEY], operator_settings.namespace)
    jitter = random.Random(operator_settings.retry_jitter_seed)
    reconciler = RunReconciler(cluster, operator_settings, random=jitter.random)
    memo.cluster = cluster
    memo.reconciler = reconciler
    memo.ticker = ScheduleTicker(cluster, operator_settings.missed_ticks)
    # Before any watch starts: what runs, what waits and what each queue allows.
    await reconciler.rebuild()
    # kopf starts the watches next, each from a list: what the cluster holds from now on is
    # acted on.
    health: OperatorHealth = memo[HEALTH_MEMO_KEY]
    health.start_serving()


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    await memo.ticker.close()
    await memo.reconciler.close()
    await memo.cluster.close()


@kopf.on.event(GROUP, VERSION, TASK_RUNS)
async def taskrun_changed(type: str, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    WATCH_HEARTBEAT.beat()
    run = dict(body)
    _sweep_index(memo).observe_run(run, deleted=type == "DELETED")
    if type == "DELETED":
        await memo.reconciler.run_changed(name, deleted=True)
    else:
        await memo.reconciler.run_changed(name, run)


@kopf.on.event("", "v1", "pods", labels={LABEL_RUN: kopf.PRESENT})
async def pod_changed(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    WATCH_HEARTBEAT.beat()
    pod = dict(body)
    _sweep_index(memo).observe_pod(pod, deleted=type == "DELETED")
    await memo.reconciler.pod_changed(pod, deleted=type == "DELETED")


@kopf.on.event(GROUP, VERSION, TASK_QUEUES)
async def taskqueue_changed(
    type: str, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    WATCH_HEARTBEAT.beat()
    await memo.reconciler.queue_changed(name, None if type == "DELETED" else dict(body))


@kopf.on.event("", "v1", "configmaps", labels={LABEL_BATCH: kopf.PRESENT})
async def batch_marker_changed(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await memo.reconciler.batch_changed(dict(body), deleted=type == "DELETED")


@kopf.on.event(GROUP, VERSION, TASK_SCHEDULES)
async def taskschedule_changed(
    type: str, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    WATCH_HEARTBEAT.beat()
    memo.ticker.schedule_changed(name, None if type == "DELETED" else dict(body))
