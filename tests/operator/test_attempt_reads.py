"""The order of the operator's reads, against the embedded cluster: a decision about an
attempt is taken from a read of the run no older than the pod it judges.

The runner reports before it exits, so a pod read after the report is certain to see the
run's report too, if the run is read after the pod. Each test makes the report land at the
worst moment for the operator: a `Cluster` that writes it, as the API would, right after one
of the operator's reads returned. The rest (the operator's reconciler, the pods run by the
embedded cluster's node agent, the cluster's writes) is real.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from podtask._contract.resources import TaskRunSpec
from podtask._contract.wire import API_VERSION, GROUP, LABEL_ATTEMPT, LABEL_RUN, VERSION
from podtask_operator.cluster import RUN_PAGE, Cluster
from podtask_operator.reconcile import RunReconciler
from podtask_operator.settings import OperatorSettings
from tests.embedded_kube import EmbeddedKube, KubeNamespace, run_then_close

OUTPUT = {"answer": 42}


def _spec(**changes: Any) -> TaskRunSpec:
    return TaskRunSpec.model_validate(
        {
            "taskId": "hello-world",
            "version": "v1",
            "image": "registry.example/tasks:v1",
            "module": "tasks.hello",
            "machine": "small-1x",
            "queue": {"name": "hello-world"},
            "retry": {"maxAttempts": 3},
            "payload": {},
            **changes,
        }
    )


def _wait(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Attempts:
    """Runs with one attempt executing, and its pod run by the embedded cluster's node agent."""

    def __init__(self, kube: EmbeddedKube, namespace: KubeNamespace) -> None:
        self.kube = kube
        self.namespace = namespace
        self.core = client.CoreV1Api(kube.api)
        self.custom = client.CustomObjectsApi(kube.api)

    def executing(self, name: str, script: str, spec: TaskRunSpec, started_ago: float = 0) -> None:
        self.namespace.create_run(
            {
                "apiVersion": API_VERSION,
                "kind": "TaskRun",
                "metadata": {"name": name},
                "spec": spec.to_wire(),
            }
        )
        started = (datetime.now(UTC) - timedelta(seconds=started_ago)).isoformat()
        self.namespace.set_run_status(
            name,
            {
                "phase": "Executing",
                "attempt": 1,
                "machine": spec.machine,
                "startedAt": started,
                "attempts": [
                    {
                        "number": 1,
                        "pod": f"{name}-1",
                        "machine": spec.machine,
                        "startedAt": started,
                    }
                ],
            },
        )
        uid = self.namespace.run(name)["metadata"]["uid"]
        self.core.create_namespaced_pod(
            self.namespace.name,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-1",
                    "labels": {LABEL_RUN: name, LABEL_ATTEMPT: "1"},
                    "ownerReferences": [
                        {"apiVersion": API_VERSION, "kind": "TaskRun", "name": name, "uid": uid}
                    ],
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "task", "image": "x", "command": [sys.executable, "-c", script]}
                    ],
                },
            },
        )

    def pod_phase(self, name: str) -> str:
        return str(self.core.read_namespaced_pod(name, self.namespace.name).status.phase)

    def report_success(self, name: str) -> None:
        """What the API does when the runner reports: one JSON patch of `status.report`."""
        report = {"attempt": 1, "ok": True, "output": OUTPUT, "error": None}
        self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace.name,
            "taskruns",
            name,
            [{"op": "add", "path": "/status/report", "value": report}],
            _content_type="application/json-patch+json",
        )

    def cancel(self, name: str) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace.name,
            "taskruns",
            name,
            {"spec": {"cancelRequestedAt": datetime.now(UTC).isoformat()}},
        )


class ReportAfterRead(Cluster):
    """The operator's real cluster layer; the runner's report lands right after the
    `nth` read of the run (a get or a list) returns, before the operator reads anything else."""

    def __init__(self, attempts: Attempts, run: str, nth: int = 1) -> None:
        super().__init__(attempts.kube.login, attempts.namespace.name)
        self._attempts = attempts
        self._run = run
        self._reads_left = nth

    def _read(self) -> None:
        self._reads_left -= 1
        if self._reads_left == 0:
            self._attempts.report_success(self._run)

    async def get_run(self, name: str) -> dict[str, Any] | None:
        run = await super().get_run(name)
        if name == self._run:
            self._read()
        return run

    async def run_pages(self, limit: int = RUN_PAGE) -> AsyncIterator[list[dict[str, Any]]]:
        async for page in super().run_pages(limit):
            self._read()
            yield page


@pytest.fixture
def attempts(embedded_kube: EmbeddedKube) -> Attempts:
    return Attempts(embedded_kube, embedded_kube.new_namespace("reads"))


def _reconciler(
    cluster: Cluster, settings: OperatorSettings, ahead: timedelta = timedelta()
) -> RunReconciler:
    """The operator's reconciler; its clock `ahead` of the kubelet's (time has passed)."""
    return RunReconciler(
        cluster, settings, random=lambda: 0.0, clock=lambda: datetime.now(UTC) + ahead
    )


def _assert_completed_once(attempts: Attempts, name: str) -> None:
    status = attempts.namespace.run(name)["status"]
    assert status["phase"] == "Completed", status
    assert status["output"] == OUTPUT
    assert [a["number"] for a in status["attempts"]] == [1]
    assert status["attempts"][0]["reason"] == "Completed"


def test_a_report_after_the_run_is_read_counts_for_the_exited_pod(
    attempts: Attempts, settings: OperatorSettings
) -> None:
    attempts.executing("event", "pass", _spec())
    _wait(lambda: attempts.pod_phase("event-1") == "Succeeded", "the pod to exit 0")
    cluster = ReportAfterRead(attempts, "event")
    run_then_close(cluster, _reconciler(cluster, settings).reconcile("event"))
    _assert_completed_once(attempts, "event")


def test_a_report_after_the_restart_listing_counts_for_the_exited_pod(
    attempts: Attempts, settings: OperatorSettings
) -> None:
    attempts.executing("listed", "pass", _spec(retry={"maxAttempts": 1}))
    _wait(lambda: attempts.pod_phase("listed-1") == "Succeeded", "the pod to exit 0")
    cluster = ReportAfterRead(attempts, "listed")
    run_then_close(cluster, _reconciler(cluster, settings).rebuild())
    _assert_completed_once(attempts, "listed")


@pytest.mark.parametrize("nth", [1, 2])
def test_a_report_before_the_max_duration_write_wins_over_the_timeout(
    attempts: Attempts, settings: OperatorSettings, nth: int
) -> None:
    """The runner reports just as the operator decides the attempt ran too long: whichever
    read the report follows, the run completed and is not TimedOut."""
    name = f"late{nth}"
    spec = _spec(maxDurationSeconds=1)
    attempts.executing(name, "import time; time.sleep(30)", spec, started_ago=60)
    _wait(lambda: attempts.pod_phase(f"{name}-1") == "Running", "the pod to run")
    cluster = ReportAfterRead(attempts, name, nth)
    # maxDuration counts from the container's start: a minute after it, the attempt is over.
    run_then_close(cluster, _reconciler(cluster, settings, timedelta(minutes=1)).reconcile(name))
    _assert_completed_once(attempts, name)


@pytest.mark.parametrize("nth", [1, 2])
def test_a_report_before_the_cancel_write_wins_over_the_cancel(
    attempts: Attempts, settings: OperatorSettings, nth: int
) -> None:
    name = f"cancel{nth}"
    attempts.executing(name, "import time; time.sleep(30)", _spec())
    _wait(lambda: attempts.pod_phase(f"{name}-1") == "Running", "the pod to run")
    attempts.cancel(name)
    cluster = ReportAfterRead(attempts, name, nth)
    run_then_close(cluster, _reconciler(cluster, settings).reconcile(name))
    _assert_completed_once(attempts, name)
