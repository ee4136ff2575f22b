"""Runs whose pods a ResourceQuota refuses for now wait, say why, and start once it has room.

The embedded cluster does not enforce ResourceQuotas (yet), so its admission is simulated in
front of it: `PodQuota` refuses a pod create, with the Status body kube-apiserver's
ResourceQuota admission sends, while the namespace has as many unfinished pods as the quota
allows. The rest is real: the operator's reconciler and scheduler, the embedded cluster, the
pods run by its kubelet.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from podtask._contract.resources import TaskRunSpec
from podtask._contract.wire import API_VERSION, LABEL_RUN
from podtask_operator.cluster import Cluster
from podtask_operator.kube import refusal
from podtask_operator.reconcile import RunReconciler
from podtask_operator.settings import OperatorSettings
from tests.embedded_kube import EmbeddedKube, run_then_close

RUNS = 3


class PodQuota(Cluster):
    """The operator's cluster layer behind a ResourceQuota of `pods` pods."""

    def __init__(self, kube: EmbeddedKube, namespace: str, pods: int) -> None:
        super().__init__(kube.login, namespace)
        self.pods = pods

    async def create_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        pods = await self.list_pods(LABEL_RUN)
        used = sum(1 for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed"))
        if used >= self.pods:
            raise refusal(
                403,
                json.dumps(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "message": f'pods "{body["metadata"]["name"]}" is forbidden: '
                        f"exceeded quota: pods, requested: pods=1, used: pods={used}, "
                        f"limited: pods={self.pods}",
                        "reason": "Forbidden",
                        "details": {"name": body["metadata"]["name"], "kind": "pods"},
                        "code": 403,
                    }
                ).encode(),
            )
        return await super().create_pod(body)


async def _until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_runs_refused_by_a_quota_wait_and_all_start(embedded_kube: EmbeddedKube) -> None:
    namespace = embedded_kube.new_namespace("quota")
    core = client.CoreV1Api(embedded_kube.api)
    spec = TaskRunSpec.model_validate(
        {
            "taskId": "hello-world",
            "version": "v1",
            "image": "registry.example/tasks:v1",
            "module": "tasks.hello",
            "machine": "micro",
            "queue": {"name": "hello-world", "concurrencyLimit": 10},
            "retry": {"maxAttempts": 1},
            "payload": {},
        }
    )
    names = [f"q{i}" for i in range(RUNS)]
    for name in names:
        namespace.create_run(
            {
                "apiVersion": API_VERSION,
                "kind": "TaskRun",
                "metadata": {"name": name},
                "spec": spec.to_wire(),
            }
        )
    settings = OperatorSettings(
        api_url="http://127.0.0.1:9",
        runner_token_secret="x" * 32,
        runner_command=[sys.executable, "-c", "import time; time.sleep(1)"],
    )
    cluster = PodQuota(embedded_kube, namespace.name, pods=1)
    reconciler = RunReconciler(cluster, settings, random=lambda: 0.0)
    seen_waiting: dict[str, dict[str, Any]] = {}
    most_alive = 0

    def waiting_condition(name: str) -> dict[str, Any] | None:
        for condition in namespace.run(name).get("status", {}).get("conditions") or []:
            if condition["type"] == "Waiting" and condition["reason"] == "QuotaExceeded":
                return condition  # type: ignore[no-any-return]
        return None

    async def watch_pods(stop: asyncio.Event) -> None:
        """What the operator's pod watch does: every pod change to the reconciler."""
        nonlocal most_alive
        while not stop.is_set():
            pods = core.list_namespaced_pod(namespace.name, label_selector=LABEL_RUN).items
            alive = [p for p in pods if p.status.phase not in ("Succeeded", "Failed")]
            most_alive = max(most_alive, len(alive))
            for pod in pods:
                await reconciler.pod_changed(core.api_client.sanitize_for_serialization(pod))
            for name in names:
                if name not in seen_waiting and (condition := waiting_condition(name)):
                    seen_waiting[name] = condition
            await asyncio.sleep(0.1)

    def finished() -> bool:
        return all(namespace.run(n).get("status", {}).get("finishedAt") for n in names)

    async def scenario() -> None:
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_pods(stop))
        try:
            await reconciler.rebuild()
            await _until(finished, "every run to end")
        finally:
            stop.set()
            await watcher

    run_then_close(cluster, scenario())

    # One pod at a time, as the quota allows; each run had its one attempt.
    assert most_alive == 1
    for name in names:
        status = namespace.run(name)["status"]
        assert [a["pod"] for a in status["attempts"]] == [f"{name}-1"], status
    # The runs that waited said why, in the apiserver's words.
    assert len(seen_waiting) >= RUNS - 1, seen_waiting
    message = next(iter(seen_waiting.values()))["message"]
    assert "exceeded quota: pods, requested: pods=1" in message, message
    reasons = {
        e.reason
        for e in core.list_namespaced_event(namespace.name).items
        if e.involved_object.kind == "TaskRun"
    }
    assert "QuotaExceeded" in reasons
