"""`GET /api/v1/runs/{id}/logs`: an attempt's pod log, whole or followed while the pod runs,
the copy its runner sent (`POST .../log`) once the pod is gone, and a 404 (never a 500)
when the run, the attempt or any log of it is not there.

The test plays the operator: it records the attempt in the run's status and creates the
attempt's pod, which the embedded cluster's kubelet runs as a local process; and the
runner, sending chunks of its output with the attempt's token.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api_fixtures import RUNNER_SECRET, assert_error
from fastapi.testclient import TestClient
from kubernetes import client as k8s

from podtask._contract.attempt_logs import UNFINISHED_LINE
from podtask._contract.wire import GROUP, LABEL_ATTEMPT, LABEL_RUN, TASK_RUNS, VERSION
from podtask._control.attempt_tokens import sign_attempt_token
from tests.embedded_kube import EmbeddedKube, KubeNamespace


def _trigger(client: TestClient) -> str:
    response = client.post("/api/v1/tasks/hello-world/trigger", json={})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def start_attempt(
    kube: EmbeddedKube,
    namespace: KubeNamespace,
    run_id: str,
    attempt: int,
    script: str,
    **container: Any,
) -> str:
    """What the operator does for an attempt: record it, create its pod `<run>-<attempt>`."""
    pod = f"{run_id}-{attempt}"
    namespace.set_run_status(
        run_id,
        {
            "phase": "Executing",
            "attempt": attempt,
            "attempts": [
                {"number": n, "pod": f"{run_id}-{n}", "machine": "micro"}
                for n in range(1, attempt + 1)
            ],
        },
    )
    k8s.CoreV1Api(kube.api).create_namespaced_pod(
        namespace.name,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "labels": {LABEL_RUN: run_id, LABEL_ATTEMPT: str(attempt)},
            },
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "task",
                        "image": "python:3.11",
                        "command": [sys.executable, "-c", script],
                        **container,
                    }
                ],
            },
        },
    )
    return pod


def pod_phase(kube: EmbeddedKube, namespace: KubeNamespace, pod: str) -> str:
    found = k8s.CoreV1Api(kube.api).read_namespaced_pod(pod, namespace.name)
    return str(found.status.phase)


def wait_until_finished(kube: EmbeddedKube, namespace: KubeNamespace, pod: str) -> None:
    deadline = time.monotonic() + 60
    while pod_phase(kube, namespace, pod) not in ("Succeeded", "Failed"):
        assert time.monotonic() < deadline, f"pod {pod} did not finish"
        time.sleep(0.05)


def test_the_log_of_the_latest_attempt_and_of_an_earlier_one(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    run_id = _trigger(client)
    first = start_attempt(embedded_kube, namespace, run_id, 1, "print('attempt one')")
    wait_until_finished(embedded_kube, namespace, first)
    second = start_attempt(
        embedded_kube,
        namespace,
        run_id,
        2,
        "import sys; print('héllo'); print('oops', file=sys.stderr)",
    )
    wait_until_finished(embedded_kube, namespace, second)

    latest = client.get(f"/api/v1/runs/{run_id}/logs")
    assert latest.status_code == 200, latest.text
    assert latest.headers["content-type"].startswith("text/plain")
    assert latest.text == "héllo\noops\n"
    earlier = client.get(f"/api/v1/runs/{run_id}/logs", params={"attempt": 1})
    assert earlier.text == "attempt one\n"


def test_following_streams_the_log_while_the_pod_runs(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace, tmp_path: Path
) -> None:
    go_on = tmp_path / "go-on"
    script = (
        "import os, time\n"
        "print('first line', flush=True)\n"
        f"while not os.path.exists({str(go_on)!r}): time.sleep(0.02)\n"
        "print('second line', flush=True)\n"
    )
    run_id = _trigger(client)
    pod = start_attempt(embedded_kube, namespace, run_id, 1, script)
    url = f"/api/v1/runs/{run_id}/logs"
    deadline = time.monotonic() + 60
    while pod_phase(embedded_kube, namespace, pod) != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with client.stream("GET", url, params={"follow": "true"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        received = ""
        chunks = response.iter_text()
        while "first line\n" not in received:
            received += next(chunks)
        # The pod still runs, waiting for us: what came so far was streamed, not read at the end.
        assert pod_phase(embedded_kube, namespace, pod) == "Running"
        go_on.touch()
        received += "".join(chunks)
    assert received == "first line\nsecond line\n"


def test_missing_runs_attempts_and_pods_are_404(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    assert_error(client.get("/api/v1/runs/run-nope/logs"), 404, "run_not_found")
    assert_error(client.get("/api/v1/runs/Not..A..Name/logs"), 404, "run_not_found")

    run_id = _trigger(client)
    # Not started: no attempt recorded, no pod yet.
    error = assert_error(client.get(f"/api/v1/runs/{run_id}/logs"), 404, "log_not_found")
    assert "has not started yet" in error["message"]

    namespace.set_run_status(run_id, {"phase": "Failed", "attempt": 2})
    gone = assert_error(
        client.get(f"/api/v1/runs/{run_id}/logs", params={"attempt": 1}), 404, "log_not_found"
    )
    assert "no longer exists" in gone["message"] and "was kept" in gone["message"]
    assert gone["details"] == {"id": run_id, "attempt": 1}
    beyond = client.get(f"/api/v1/runs/{run_id}/logs", params={"attempt": 4})
    assert "attempt 4" in assert_error(beyond, 404, "attempt_not_found")["message"]
    bad = client.get(f"/api/v1/runs/{run_id}/logs", params={"attempt": 0})
    assert_error(bad, 422, "invalid_request")


def test_a_pod_whose_container_has_not_started_is_409(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    run_id = _trigger(client)
    start_attempt(
        embedded_kube,
        namespace,
        run_id,
        1,
        "print(1)",
        env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}],
    )
    error = assert_error(client.get(f"/api/v1/runs/{run_id}/logs"), 409, "log_not_ready")
    assert "try again" in error["message"]
    followed = client.get(f"/api/v1/runs/{run_id}/logs", params={"follow": "true"})
    assert_error(followed, 409, "log_not_ready")


def test_a_pod_of_that_name_that_is_not_the_attempts_is_not_its_log(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    run_id = _trigger(client)
    namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1})
    k8s.CoreV1Api(embedded_kube.api).create_namespaced_pod(
        namespace.name,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{run_id}-1"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "x", "image": "x", "command": [sys.executable, "-c", "print(1)"]}
                ],
            },
        },
    )
    assert_error(client.get(f"/api/v1/runs/{run_id}/logs"), 404, "log_not_found")


def _send(
    client: TestClient, run_id: str, attempt: int, offset: int, text: str, **more: Any
) -> Any:
    """What the runner does: a chunk of its output, with its attempt token."""
    token = sign_attempt_token(RUNNER_SECRET.encode(), run_id, attempt, ttl_seconds=60)
    return client.post(
        f"/api/v1/runner/runs/{run_id}/attempts/{attempt}/log",
        json={"offset": offset, "text": text, **more},
        headers={"Authorization": f"Bearer {token}"},
    )


def _sent(
    client: TestClient, run_id: str, attempt: int, offset: int, text: str, **more: Any
) -> None:
    response = _send(client, run_id, attempt, offset, text, **more)
    assert response.status_code == 204, response.text


def _eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {check}"
        time.sleep(0.05)


def _executing(namespace: KubeNamespace, run_id: str, attempt: int) -> None:
    namespace.set_run_status(run_id, {"phase": "Executing", "attempt": attempt})


def _executing_run(client: TestClient, namespace: KubeNamespace) -> str:
    run_id = _trigger(client)
    _executing(namespace, run_id, 1)
    return run_id


def test_once_the_pod_is_gone_the_log_is_the_copy_its_runner_sent(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _executing_run(client, namespace)
    _sent(client, run_id, 1, 0, "first line\n")
    # A chunk sent again (its answer was lost) is kept once.
    _sent(client, run_id, 1, 0, "first line\n")
    _sent(client, run_id, 1, 11, "h\u00e9llo\n", final=True)

    whole = client.get(f"/api/v1/runs/{run_id}/logs")
    assert whole.status_code == 200, whole.text
    assert whole.headers["content-type"].startswith("text/plain")
    assert whole.text == "first line\nh\u00e9llo\n"
    followed = client.get(f"/api/v1/runs/{run_id}/logs", params={"follow": "true"})
    assert followed.text == whole.text


def test_a_short_attempts_whole_log_is_one_write(
    client: TestClient, namespace: KubeNamespace, embedded_kube: EmbeddedKube
) -> None:
    """Its one chunk, final: the segment is created with the text and the end in it (not
    patched first, to find it missing, nor patched again for the end)."""
    run_id = _executing_run(client, namespace)
    before = embedded_kube.cluster.request_counts()
    _sent(client, run_id, 1, 0, "starting\ncompleted\n", final=True)
    after = embedded_kube.cluster.request_counts()
    writes = {verb: after[verb] - before[verb] for verb in ("create", "patch", "update")}
    assert writes == {"create": 1, "patch": 0, "update": 0}
    assert client.get(f"/api/v1/runs/{run_id}/logs").text == "starting\ncompleted\n"


def test_each_attempt_keeps_its_own_log(client: TestClient, namespace: KubeNamespace) -> None:
    run_id = _executing_run(client, namespace)
    _sent(client, run_id, 1, 0, "attempt one\n", final=True)
    _executing(namespace, run_id, 2)
    _sent(client, run_id, 2, 0, "attempt two\n", final=True)
    namespace.set_run_status(run_id, {"phase": "Failed", "attempt": 2})
    assert client.get(f"/api/v1/runs/{run_id}/logs").text == "attempt two\n"
    earlier = client.get(f"/api/v1/runs/{run_id}/logs", params={"attempt": 1})
    assert earlier.text == "attempt one\n"


def test_a_log_whose_runner_stopped_short_says_so_once_the_attempt_ended(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _executing_run(client, namespace)
    _sent(client, run_id, 1, 0, "allocating\n")
    assert client.get(f"/api/v1/runs/{run_id}/logs").text == "allocating\n"
    # An OOM kill: the runner never sent its last chunk.
    namespace.set_run_status(run_id, {"phase": "Failed", "attempt": 1})
    ended = client.get(f"/api/v1/runs/{run_id}/logs").text
    assert ended == "allocating\n" + UNFINISHED_LINE


def test_an_ended_attempts_runner_adds_to_its_log_only_while_its_pod_runs(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace, tmp_path: Path
) -> None:
    run_id = _trigger(client)
    go_on = tmp_path / "go-on"
    script = f"import os, time\nwhile not os.path.exists({str(go_on)!r}): time.sleep(0.02)\n"
    pod = start_attempt(embedded_kube, namespace, run_id, 1, script)
    # Canceled: the runner, being stopped, still writes its last lines.
    namespace.set_run_status(run_id, {"phase": "Canceled", "attempt": 1})
    _eventually(lambda: pod_phase(embedded_kube, namespace, pod) == "Running")
    _sent(client, run_id, 1, 0, "stopping\n", final=True)
    go_on.touch()
    wait_until_finished(embedded_kube, namespace, pod)
    refused = assert_error(_send(client, run_id, 1, 9, "later\n"), 401, "attempt_ended")
    assert refused["details"]["why"] == "the run finished as Canceled"
    k8s.CoreV1Api(embedded_kube.api).delete_namespaced_pod(
        pod, namespace.name, grace_period_seconds=0
    )
    _eventually(lambda: client.get(f"/api/v1/runs/{run_id}/logs").text == "stopping\n")


def test_the_log_goes_with_its_run(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    run_id = _executing_run(client, namespace)
    _sent(client, run_id, 1, 0, "kept for the run's retention\n")
    core = k8s.CoreV1Api(embedded_kube.api)
    selector = f"{LABEL_RUN}={run_id}"
    assert len(core.list_namespaced_config_map(namespace.name, label_selector=selector).items) == 1
    k8s.CustomObjectsApi(embedded_kube.api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace.name, TASK_RUNS, run_id
    )
    _eventually(
        lambda: not core.list_namespaced_config_map(namespace.name, label_selector=selector).items
    )


def test_a_chunk_the_api_cannot_take_is_a_4xx(client: TestClient, namespace: KubeNamespace) -> None:
    run_id = _executing_run(client, namespace)
    assert_error(_send(client, run_id, 1, -1, "x"), 422, "invalid_request")
    assert_error(_send(client, run_id, 1, 0, "x" * (64 * 1024 + 1)), 422, "invalid_request")
    assert_error(_send(client, run_id, 3, 0, "x"), 409, "attempt_not_started")
