"""An attempt whose pod cannot start, against the embedded cluster: the operator's real
reconciler and timers, the pod run (or not) by the embedded cluster's node agent.

The node agent cannot create a container whose environment names a Secret that does not exist
(CreateContainerConfigError), as a real kubelet cannot. The run says so at once (a `Stalled`
condition and an Event), its maxDuration does not run while the pod has not started, and after
the pending timeout the attempt ends `ContainerConfigError` and the run is retried in a pod of
a new name.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from podtask._contract.resources import TaskRunSpec
from podtask._contract.wire import API_VERSION, LABEL_ATTEMPT, LABEL_MACHINE, LABEL_QUEUE, LABEL_RUN
from podtask_operator.cluster import Cluster
from podtask_operator.reconcile import RunReconciler
from podtask_operator.settings import OperatorSettings
from tests.embedded_kube import EmbeddedKube, run_then_close

NAME = "stuck"


def _spec() -> TaskRunSpec:
    return TaskRunSpec.model_validate(
        {
            "taskId": "hello-world",
            "version": "v1",
            "image": "registry.example/tasks:v1",
            "module": "tasks.hello",
            "machine": "micro",
            "queue": {"name": "hello-world"},
            "retry": {"maxAttempts": 2, "minTimeoutInMs": 100, "maxTimeoutInMs": 100},
            "maxDurationSeconds": 1,
            "payload": {},
        }
    )


async def _until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _stalled(run: dict[str, Any]) -> dict[str, Any] | None:
    for condition in (run.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Stalled":
            return condition  # type: ignore[no-any-return]
    return None


def test_a_pod_that_cannot_create_its_container_says_why_and_is_retried(
    embedded_kube: EmbeddedKube,
) -> None:
    namespace = embedded_kube.new_namespace("pending")
    core = client.CoreV1Api(embedded_kube.api)
    spec = _spec()
    namespace.create_run(
        {
            "apiVersion": API_VERSION,
            "kind": "TaskRun",
            "metadata": {"name": NAME},
            "spec": spec.to_wire(),
        }
    )
    # Attempt 1 was started a minute ago: past its maxDuration, had its pod ever started.
    started = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    namespace.set_run_status(
        NAME,
        {
            "phase": "Executing",
            "attempt": 1,
            "machine": "micro",
            "startedAt": started,
            "attempts": [
                {"number": 1, "pod": f"{NAME}-1", "machine": "micro", "startedAt": started}
            ],
        },
    )
    uid = namespace.run(NAME)["metadata"]["uid"]
    missing = f"{NAME}-1-token"
    core.create_namespaced_pod(
        namespace.name,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{NAME}-1",
                "labels": {
                    LABEL_RUN: NAME,
                    LABEL_ATTEMPT: "1",
                    LABEL_QUEUE: "hello-world",
                    LABEL_MACHINE: "micro",
                },
                "ownerReferences": [
                    {"apiVersion": API_VERSION, "kind": "TaskRun", "name": NAME, "uid": uid}
                ],
            },
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "task",
                        "image": "x",
                        "command": [sys.executable, "-c", "pass"],
                        "env": [
                            {
                                "name": "PODTASK_ATTEMPT_TOKEN",
                                "valueFrom": {"secretKeyRef": {"name": missing, "key": "token"}},
                            }
                        ],
                    }
                ],
            },
        },
    )

    def waiting_reason() -> str:
        pod = core.read_namespaced_pod(f"{NAME}-1", namespace.name)
        statuses = pod.status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return str(waiting.reason) if waiting else ""

    settings = OperatorSettings(
        api_url="http://127.0.0.1:9",
        runner_token_secret="x" * 32,
        runner_command=[sys.executable, "-c", "import time; time.sleep(60)"],
        pending_timeout_seconds=4,
    )
    cluster = Cluster(embedded_kube.login, namespace.name)
    reconciler = RunReconciler(cluster, settings, random=lambda: 0.0)

    async def scenario() -> None:
        await _until(lambda: waiting_reason() == "CreateContainerConfigError", "the config error")
        await reconciler.reconcile(NAME)
        run = namespace.run(NAME)
        # Said at once, and not TimedOut: the task never started, so its maxDuration has not.
        assert run["status"]["phase"] == "Executing", run["status"]
        condition = _stalled(run)
        assert condition is not None, run["status"]
        assert condition["reason"] == "ContainerConfigError"
        assert f'CreateContainerConfigError: secret "{missing}" not found' in condition["message"]
        events = core.list_namespaced_event(
            namespace.name, field_selector=f"involvedObject.name={NAME}"
        ).items
        assert [e.reason for e in events if e.type == "Warning"] == ["ContainerConfigError"]

        # The pending timeout passes (the reconciler's own timer): the attempt ends and the
        # run is retried, in a pod of a new name.
        def retried() -> dict[str, Any] | None:
            status = namespace.run(NAME)["status"]
            return status if status.get("attempt") == 2 else None

        status = await _until(retried, "attempt 2")
        first = status["attempts"][0]
        assert first["reason"] == "ContainerConfigError", first
        assert first["error"]["type"] == "ContainerConfigError"
        assert status["attempts"][1]["pod"] == f"{NAME}-2"
        assert _stalled(namespace.run(NAME)) is None
        await _until(
            lambda: (
                not any(
                    p.metadata.name == f"{NAME}-1"
                    for p in core.list_namespaced_pod(namespace.name).items
                )
            ),
            "the stuck pod to be deleted",
        )
        await _until(
            lambda: core.read_namespaced_pod(f"{NAME}-2", namespace.name).status.phase == "Running",
            "attempt 2's pod to run",
        )
        # The slot of the stuck pod is free; only attempt 2's pod counts.
        assert reconciler.scheduler.counts("hello-world") == (1, 0)

    run_then_close(cluster, scenario())
