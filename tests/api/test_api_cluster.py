"""The API served by uvicorn over the embedded Kubernetes API, driven over real HTTP.

Run ids, labels, idempotency under concurrent triggers, the runner's report landing in
the TaskRun's status (with a real runner process), and the error mapping of a real
client talking to a real server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import API_KEY, HELLO, RUNNER_SECRET, free_port, served, settings_for

from podtask._contract.wire import LABEL_QUEUE, LABEL_TASK
from podtask._control.attempt_tokens import sign_attempt_token
from podtask_api.app import create_app
from podtask_api.cluster import (
    AttemptNotCurrent,
    ClusterUnavailable,
    KubernetesCluster,
    ObjectNotFound,
)
from podtask_devcluster.cluster import kubeconfig_text
from tests.embedded_kube import EmbeddedKube, KubeNamespace

RUNNER_TASKS = Path(__file__).parents[1] / "runner" / "task_modules" / "runner_sample_tasks.py"


class Stack:
    """A namespace of the embedded cluster, and the real API served by uvicorn over it."""

    def __init__(self, kube: EmbeddedKube, namespace: KubeNamespace, api_url: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.api_url = api_url
        self.http = httpx.Client(
            base_url=api_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
        )

    def run(self, name: str) -> dict[str, Any]:
        return self.namespace.run(name)

    def set_status(self, name: str, status: dict[str, Any]) -> None:
        """What the operator does when it starts an attempt's pod."""
        self.namespace.set_run_status(name, status)

    def cluster(self) -> KubernetesCluster:
        return KubernetesCluster.connect(self.namespace.name, str(self.kube.kubeconfig))


@pytest.fixture(scope="module")
def stack(embedded_kube: EmbeddedKube) -> Iterator[Stack]:
    namespace = embedded_kube.new_namespace("api-http")
    namespace.deploy_task(HELLO)
    with served(create_app(settings_for(embedded_kube, namespace))) as url:
        running = Stack(embedded_kube, namespace, url)
        yield running
        running.http.close()


def test_trigger_creates_a_task_run_in_the_cluster(stack: Stack) -> None:
    response = stack.http.post(
        "/api/v1/tasks/hello-world/trigger",
        json={"payload": {"to": "Ada", "cc": None}, "options": {"tags": ["a"]}},
    )
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    run = stack.run(run_id)
    assert run["metadata"]["labels"] == {LABEL_TASK: "hello-world", LABEL_QUEUE: "greetings"}
    assert run["spec"]["payload"] == {"to": "Ada", "cc": None}
    assert run["spec"]["retry"]["maxAttempts"] == 5

    view = stack.http.get(f"/api/v1/runs/{run_id}").json()
    assert view["status"] == "Pending"
    assert view["tags"] == ["a"]
    assert view["createdAt"] == run["metadata"]["creationTimestamp"]


def test_unknown_task_and_run_are_404(stack: Stack) -> None:
    missing = stack.http.post("/api/v1/tasks/not-deployed/trigger", json={})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "task_not_found"
    assert stack.http.get("/api/v1/runs/run-000000000000").status_code == 404


def test_concurrent_identical_idempotent_triggers_make_one_run(stack: Stack) -> None:
    body = {"payload": 1, "options": {"idempotencyKey": "invoice-42"}}

    def trigger(_: int) -> httpx.Response:
        return stack.http.post("/api/v1/tasks/hello-world/trigger", json=body)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(trigger, range(8)))
    assert {r.status_code for r in responses} <= {200, 201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert [r.json()["isCached"] for r in responses].count(False) == 1


def test_runner_report_lands_in_the_task_run_status(stack: Stack) -> None:
    spec = HELLO.model_copy(update={"task_id": "runner-echo-async", "module": str(RUNNER_TASKS)})
    stack.namespace.deploy_task(spec)
    run_id = stack.http.post(
        "/api/v1/tasks/runner-echo-async/trigger", json={"payload": {"k": [1, None]}}
    ).json()["id"]
    stack.set_status(
        run_id,
        {
            "phase": "Executing",
            "attempt": 1,
            "attempts": [{"number": 1, "pod": f"{run_id}-1", "machine": "small-1x"}],
        },
    )
    token = sign_attempt_token(RUNNER_SECRET.encode(), run_id, 1, ttl_seconds=300)
    done = subprocess.run(
        [sys.executable, "-m", "podtask_runner"],
        env={
            **os.environ,
            "PODTASK_API_URL": stack.api_url,
            "PODTASK_RUN_ID": run_id,
            "PODTASK_ATTEMPT": "1",
            "PODTASK_ATTEMPT_TOKEN": token,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    status = stack.run(run_id)["status"]
    # A report of success completes the run in the same write (`reports.report_writes`): the
    # output once, in `status.output`, its nulls kept; the attempt ended, its pod's exit code
    # not known yet.
    assert status["phase"] == "Completed"
    report = status["report"]
    assert report["attempt"] == 1 and report["ok"] is True and report.get("output") is None
    assert status["output"] == {
        "payload": {"k": [1, None]},
        "async": True,
        "taskId": "runner-echo-async",
    }
    (attempt,) = status["attempts"]
    assert attempt["reason"] == "Completed" and attempt["finishedAt"]
    assert attempt.get("exitCode") is None
    assert status["conditions"][-1]["reason"] == "Completed"


def test_a_report_for_a_moved_on_run_is_refused_atomically(stack: Stack) -> None:
    run_id = stack.http.post("/api/v1/tasks/hello-world/trigger", json={}).json()["id"]
    stack.set_status(run_id, {"phase": "Executing", "attempt": 1})
    cluster = stack.cluster()
    seen_on_attempt_1 = cluster.get_run(run_id)
    stack.set_status(run_id, {"attempt": 2})
    with pytest.raises(AttemptNotCurrent) as moved:
        cluster.record_report(seen_on_attempt_1, {"attempt": 1, "ok": True})
    assert moved.value.run["status"]["attempt"] == 2
    assert "report" not in stack.run(run_id)["status"]
    cluster.record_report(moved.value.run, {"attempt": 2, "ok": True, "output": None})
    # A null output is dropped, as kube-apiserver drops a null its schema does not allow
    # (`output` is not nullable); readers take a missing output as null.
    assert stack.run(run_id)["status"]["report"] == {"attempt": 2, "ok": True}
    with pytest.raises(ObjectNotFound):
        cluster.get_run("run-nothinghere")


def test_a_report_before_any_status_is_refused_once_the_run_changed(stack: Stack) -> None:
    run_id = stack.http.post("/api/v1/tasks/hello-world/trigger", json={}).json()["id"]
    cluster = stack.cluster()
    seen_without_status = cluster.get_run(run_id)
    assert "status" not in seen_without_status
    stack.set_status(run_id, {"phase": "Executing", "attempt": 1})
    with pytest.raises(AttemptNotCurrent) as moved:
        cluster.record_report(seen_without_status, {"attempt": 1, "ok": True})
    assert "report" not in stack.run(run_id)["status"]
    cluster.record_report(moved.value.run, {"attempt": 1, "ok": True, "output": [None]})
    status = stack.run(run_id)["status"]
    assert status["report"]["output"] == [None] and status["attempt"] == 1

    untouched = stack.http.post("/api/v1/tasks/hello-world/trigger", json={}).json()["id"]
    cluster.record_report(cluster.get_run(untouched), {"attempt": 1, "ok": True})
    assert stack.run(untouched)["status"] == {"report": {"attempt": 1, "ok": True}}


@pytest.mark.component
def test_an_unreachable_cluster_is_cluster_unavailable(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeconfig_text(f"http://127.0.0.1:{free_port()}"))
    cluster = KubernetesCluster.connect("default", str(kubeconfig))
    with pytest.raises(ClusterUnavailable) as unavailable:
        cluster.get_task("hello-world")
    assert unavailable.value.status == 503
