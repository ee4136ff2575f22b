"""An attempt's token Secret and pod against the embedded cluster: the kubelet hands the
process the token from the Secret, a retried create keeps the first Secret, and the Secret
goes with its run."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from podtask._contract.resources import TaskRunSpec
from podtask._contract.wire import API_VERSION
from podtask_operator.cluster import Cluster
from podtask_operator.pods import pod_for_attempt, token_secret_for_attempt
from podtask_operator.settings import OperatorSettings
from tests.embedded_kube import EmbeddedKube, run_then_close


def _wait_for(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_the_pod_gets_its_token_from_the_attempts_secret(
    embedded_kube: EmbeddedKube, spec: TaskRunSpec
) -> None:
    namespace = embedded_kube.new_namespace("tokens")
    namespace.create_run(
        {
            "apiVersion": API_VERSION,
            "kind": "TaskRun",
            "metadata": {"name": "run-tok"},
            "spec": spec.to_wire(),
        }
    )
    run = namespace.run("run-tok")
    settings = OperatorSettings(
        api_url="http://127.0.0.1:9",
        runner_token_secret="x" * 32,
        runner_command=[
            sys.executable,
            "-c",
            "import os; print('token=' + os.environ['PODTASK_ATTEMPT_TOKEN'])",
        ],
    )
    cluster = Cluster(embedded_kube.login, namespace.name)
    core = kubernetes.client.CoreV1Api(embedded_kube.api)

    async def start() -> None:
        await cluster.create_secret(token_secret_for_attempt(run, 1, "first.token"))
        # A retried start (say, after an operator restart) reuses the Secret it made.
        await cluster.create_secret(token_secret_for_attempt(run, 1, "second.token"))
        await cluster.create_pod(pod_for_attempt(run, spec, 1, "micro", settings))

    run_then_close(cluster, start())

    def log() -> str:
        try:
            return str(core.read_namespaced_pod_log("run-tok-1", namespace.name))
        except ApiException:
            return ""

    assert (
        _wait_for(lambda: "token=" in log() and log(), "the pod's output") == "token=first.token\n"
    )
    pod = core.read_namespaced_pod("run-tok-1", namespace.name)
    assert "first.token" not in str(core.api_client.sanitize_for_serialization(pod))

    # The run goes, and its token Secret with it (ownerReference).
    kubernetes.client.CustomObjectsApi(embedded_kube.api).delete_namespaced_custom_object(
        "podtask.dev", "v1alpha1", namespace.name, "taskruns", "run-tok"
    )

    def secret_gone() -> bool:
        names = [s.metadata.name for s in core.list_namespaced_secret(namespace.name).items]
        return "run-tok-1-token" not in names

    _wait_for(secret_gone, "the Secret to be garbage-collected")
