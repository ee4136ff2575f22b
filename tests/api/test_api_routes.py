"""The API's endpoints through HTTP, over the embedded Kubernetes API.

Each test has a namespace of its own (the `namespace` fixture) with the HELLO task deployed;
the test plays the operator by writing run status there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import (
    API_KEY,
    HELLO,
    RUNNER_SECRET,
    api_settings,
    assert_error,
    settings_for,
)
from fastapi.testclient import TestClient

from podtask._contract.resources import OutOfMemoryPolicy, RetryPolicy
from podtask._contract.wire import LABEL_QUEUE, LABEL_TASK
from podtask._control.attempt_tokens import sign_attempt_token
from podtask_api.app import create_app
from podtask_api.cluster import KubernetesCluster, ObjectRejected
from podtask_devcluster.cluster import kubeconfig_text
from podtask_devcluster.ports import free_port
from tests.embedded_kube import EmbeddedKube, KubeNamespace


def test_healthz_needs_no_key(embedded_kube: EmbeddedKube, namespace: KubeNamespace) -> None:
    with TestClient(create_app(settings_for(embedded_kube, namespace))) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}


def test_trigger_creates_a_run_and_get_shows_it(
    client: TestClient, namespace: KubeNamespace
) -> None:
    response = client.post(
        "/api/v1/tasks/hello-world/trigger",
        json={"payload": {"name": "Ada"}, "options": {"tags": ["vip"], "priority": 3}},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["isCached"] is False
    run_id = created["id"]
    stored = namespace.run(run_id)
    assert stored["metadata"]["labels"] == {LABEL_TASK: "hello-world", LABEL_QUEUE: "greetings"}
    assert stored["spec"]["payload"] == {"name": "Ada"}

    view = client.get(f"/api/v1/runs/{run_id}").json()
    assert view["id"] == run_id
    assert view["status"] == "Pending"
    assert view["payload"] == {"name": "Ada"}
    assert view["tags"] == ["vip"]
    assert view["priority"] == 3
    assert view["createdAt"]


def test_trigger_without_a_body_uses_defaults(client: TestClient) -> None:
    response = client.post("/api/v1/tasks/hello-world/trigger")
    assert response.status_code == 201, response.text


def test_unknown_task_says_how_to_deploy_it(client: TestClient) -> None:
    error = assert_error(client.post("/api/v1/tasks/nope/trigger", json={}), 404, "task_not_found")
    assert "'nope'" in error["message"] and "podtask deploy" in error["message"]
    assert_error(client.post("/api/v1/tasks/Bad..Name/trigger", json={}), 404, "task_not_found")


def test_unknown_run_is_404(client: TestClient) -> None:
    assert_error(client.get("/api/v1/runs/run-doesnotexist"), 404, "run_not_found")
    assert_error(client.get("/api/v1/runs/..%2Fsecrets"), 404, "not_found")


def test_public_endpoints_need_a_valid_key(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    with TestClient(create_app(settings_for(embedded_kube, namespace))) as anonymous:
        error = assert_error(
            anonymous.post("/api/v1/tasks/hello-world/trigger", json={"options": {"x": 1}}),
            401,
            "unauthorized",
        )
        assert "Authorization: Bearer" in error["message"]
        wrong = anonymous.get("/api/v1/runs/run-x", headers={"Authorization": "Bearer nope"})
        assert_error(wrong, 401, "unauthorized")
        assert wrong.headers["www-authenticate"] == "Bearer"
    assert namespace.run_names() == []


def test_dev_mode_without_keys_is_open(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    settings = settings_for(embedded_kube, namespace, dev_mode=True, api_key_hashes="")
    with TestClient(create_app(settings)) as anonymous:
        assert anonymous.post("/api/v1/tasks/hello-world/trigger", json={}).status_code == 201


def test_unknown_option_and_bad_machine_are_422_naming_the_fields(client: TestClient) -> None:
    error = assert_error(
        client.post(
            "/api/v1/tasks/hello-world/trigger",
            json={"options": {"colour": "red", "machine": "huge", "priority": "high"}},
        ),
        422,
        "invalid_request",
    )
    fields = {d["field"] for d in error["details"]}
    assert fields == {"options.colour", "options.machine", "options.priority"}
    for field in fields:
        assert field in error["message"]
    assert "valid machines are: micro, small-1x" in error["message"]


def test_bad_input_is_never_a_500(client: TestClient) -> None:
    url = "/api/v1/tasks/hello-world/trigger"
    malformed = client.post(
        url, content=b'{"payload": ', headers={"Content-Type": "application/json"}
    )
    assert_error(malformed, 400, "invalid_json")
    assert_error(client.post(url, json=[1, 2]), 422, "invalid_request")
    assert_error(client.post(url, json={"options": "fast"}), 422, "invalid_request")
    assert_error(client.post(url, json={"options": {"tags": "a"}}), 422, "invalid_request")
    nan = client.post(
        url, content=b'{"payload": NaN}', headers={"Content-Type": "application/json"}
    )
    assert nan.status_code in (400, 422)
    assert "error" in nan.json()


def test_payload_over_the_limit_is_413(client: TestClient) -> None:
    error = assert_error(
        client.post("/api/v1/tasks/hello-world/trigger", json={"payload": "x" * (512 * 1024)}),
        413,
        "payload_too_large",
    )
    assert error["details"] == {"size": 512 * 1024 + 2, "limit": 512 * 1024}


def test_a_huge_body_is_refused_before_it_is_read(client: TestClient) -> None:
    huge = b'{"payload": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    response = client.post(
        "/api/v1/tasks/hello-world/trigger",
        content=huge,
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "request_too_large")

    def chunks() -> Any:
        yield b'{"payload": "'
        for _ in range(64):
            yield b"x" * 65536
        yield b'"}'

    chunked = client.post(
        "/api/v1/tasks/hello-world/trigger",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert_error(chunked, 413, "request_too_large")


def test_unknown_route_and_wrong_method_use_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/api/v1/nothing"), 404, "not_found")
    assert_error(client.get("/api/v1/tasks/hello-world/trigger"), 405, "method_not_allowed")


def test_idempotency_key_returns_the_same_run(client: TestClient) -> None:
    url = "/api/v1/tasks/hello-world/trigger"
    body = {"payload": 1, "options": {"idempotencyKey": "order-7"}}
    first = client.post(url, json=body)
    second = client.post(url, json=body)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert second.json()["isCached"] is True
    other = client.post(url, json={"options": {"idempotencyKey": "order-8"}})
    assert other.json()["id"] != first.json()["id"]


@pytest.mark.component
def test_an_unreachable_cluster_is_503(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeconfig_text(f"http://127.0.0.1:{free_port()}"))
    with TestClient(
        create_app(api_settings(kubeconfig=str(kubeconfig))),
        headers={"Authorization": f"Bearer {API_KEY}"},
        raise_server_exceptions=False,
    ) as client:
        error = assert_error(
            client.post("/api/v1/tasks/hello-world/trigger", json={}), 503, "cluster_unavailable"
        )
    assert "cannot be reached" in error["message"]
    assert "Traceback" not in json.dumps(error)


def test_an_unexpected_failure_is_a_500_without_internals(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: KubernetesCluster, name: str) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(KubernetesCluster, "get_run", explode)
    error = assert_error(client.get("/api/v1/runs/run-abc"), 500, "internal_error")
    assert "secret" not in error["message"]


def _trigger(client: TestClient, task_id: str = "hello-world") -> str:
    response = client.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {"n": 1}})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def _attempt_entry(run_id: str, number: int, machine: str = "micro", **more: Any) -> dict[str, Any]:
    return {"number": number, "pod": f"{run_id}-{number}", "machine": machine, **more}


def _start_attempt(client: TestClient, namespace: KubeNamespace, attempt: int = 1) -> str:
    """A run as the operator leaves it once it has recorded `attempt` as started."""
    run_id = _trigger(client)
    namespace.set_run_status(
        run_id,
        {"phase": "Executing", "attempt": attempt, "attempts": [_attempt_entry(run_id, attempt)]},
    )
    return run_id


def _token(
    run_id: str, attempt: int, secret: str = RUNNER_SECRET, ttl: float = 60
) -> dict[str, str]:
    token = sign_attempt_token(secret.encode(), run_id, attempt, ttl_seconds=ttl)
    return {"Authorization": f"Bearer {token}"}


def test_runner_fetches_its_attempt(client: TestClient, namespace: KubeNamespace) -> None:
    run_id = _start_attempt(client, namespace)
    url = f"/api/v1/runner/runs/{run_id}/attempts/1"
    response = client.get(url, headers=_token(run_id, 1))
    assert response.status_code == 200, response.text
    attempt = response.json()
    assert attempt["runId"] == run_id
    assert attempt["module"] == "tasks.hello"
    assert attempt["payload"] == {"n": 1}
    assert attempt["context"]["machine"] == {"name": "micro", "cpu": 0.25, "memoryGb": 0.25}
    assert attempt["context"]["queue"] == "greetings"


def test_runner_endpoints_check_the_attempt_token(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _start_attempt(client, namespace)
    url = f"/api/v1/runner/runs/{run_id}/attempts/1"
    # The API key is no substitute for the attempt token.
    assert_error(client.get(url), 401, "unauthorized")
    assert_error(client.get(url, headers=_token(run_id, 1, secret="wrong")), 401, "unauthorized")
    expired = _token(run_id, 1, ttl=-5)
    assert (
        "expired" in assert_error(client.get(url, headers=expired), 401, "unauthorized")["message"]
    )
    assert_error(client.get(url, headers=_token(run_id, 2)), 403, "forbidden")
    assert_error(client.get(url, headers=_token("run-other", 1)), 403, "forbidden")


def test_runner_of_a_stale_attempt_gets_401(client: TestClient, namespace: KubeNamespace) -> None:
    run_id = _start_attempt(client, namespace, attempt=2)
    stale = f"/api/v1/runner/runs/{run_id}/attempts/1"
    assert_error(client.get(stale, headers=_token(run_id, 1)), 401, "attempt_ended")
    report = {"ok": True, "output": 1, "error": None}
    response = client.post(f"{stale}/complete", json=report, headers=_token(run_id, 1))
    assert_error(response, 401, "attempt_ended")
    # Attempt 3 may already run (the operator records it after creating its pod); 4 may not.
    early = f"/api/v1/runner/runs/{run_id}/attempts/4"
    assert_error(client.get(early, headers=_token(run_id, 4)), 409, "attempt_not_started")
    response = client.post(f"{early}/complete", json=report, headers=_token(run_id, 4))
    assert_error(response, 409, "attempt_not_started")
    assert "report" not in namespace.run(run_id)["status"]


def test_runner_of_a_finished_run_gets_401(client: TestClient, namespace: KubeNamespace) -> None:
    run_id = _start_attempt(client, namespace)
    namespace.set_run_status(run_id, {"phase": "Canceled"})
    url = f"/api/v1/runner/runs/{run_id}/attempts/1"
    ended = assert_error(client.get(url, headers=_token(run_id, 1)), 401, "attempt_ended")
    assert "finished as Canceled" in ended["message"]
    # Nor may the attempt the operator would have started next.
    assert_error(
        client.get(f"/api/v1/runner/runs/{run_id}/attempts/2", headers=_token(run_id, 2)),
        401,
        "attempt_ended",
    )
    report = {"ok": True, "output": 1, "error": None}
    assert_error(
        client.post(f"{url}/complete", json=report, headers=_token(run_id, 1)),
        401,
        "attempt_ended",
    )
    assert "report" not in namespace.run(run_id)["status"]


def test_first_attempt_before_the_operator_records_it(
    client: TestClient, namespace: KubeNamespace
) -> None:
    # The operator has created the pod of attempt 1 but not yet written any status.
    run_id = _trigger(client)
    assert "status" not in namespace.run(run_id)
    url = f"/api/v1/runner/runs/{run_id}/attempts/1"
    response = client.get(url, headers=_token(run_id, 1))
    assert response.status_code == 200, response.text
    context = response.json()["context"]
    assert context["attempt"] == 1
    assert context["machine"] == {"name": "small-1x", "cpu": 0.5, "memoryGb": 0.5}

    report = {"ok": True, "output": {"a": None}, "error": None}
    response = client.post(f"{url}/complete", json=report, headers=_token(run_id, 1))
    assert response.status_code == 204, response.text
    stored = namespace.run(run_id)["status"]
    assert stored["report"]["attempt"] == 1 and stored["report"]["output"] == {"a": None}
    # The operator's own write lands next to the report, not over it.
    namespace.set_run_status(
        run_id, {"phase": "Executing", "attempt": 1, "attempts": [_attempt_entry(run_id, 1)]}
    )
    assert namespace.run(run_id)["status"]["report"]["attempt"] == 1


def test_next_attempt_after_an_oom_before_the_operator_records_it(
    client: TestClient, namespace: KubeNamespace
) -> None:
    retry = RetryPolicy(max_attempts=3, out_of_memory=OutOfMemoryPolicy(machine="large-1x"))
    namespace.deploy_task(HELLO.model_copy(update={"task_id": "hello-oom", "retry": retry}))
    run_id = _trigger(client, "hello-oom")
    # Attempt 1 was OOM-killed; the operator has created attempt 2's pod on the policy's
    # machine but its status still says attempt 1.
    namespace.set_run_status(
        run_id,
        {
            "phase": "WaitingToRetry",
            "attempt": 1,
            "machine": "small-1x",
            "attempts": [_attempt_entry(run_id, 1, "small-1x", reason="OOMKilled", exitCode=137)],
        },
    )
    url = f"/api/v1/runner/runs/{run_id}/attempts/2"
    response = client.get(url, headers=_token(run_id, 2))
    assert response.status_code == 200, response.text
    attempt = response.json()
    assert attempt["attempt"] == 2 and attempt["context"]["attempt"] == 2
    assert attempt["context"]["machine"] == {"name": "large-1x", "cpu": 4, "memoryGb": 8}

    report = {"ok": True, "output": "done", "error": None}
    response = client.post(f"{url}/complete", json=report, headers=_token(run_id, 2))
    assert response.status_code == 204, response.text
    status = namespace.run(run_id)["status"]
    assert status["attempt"] == 1
    assert status["report"]["attempt"] == 2 and status["report"]["output"] == "done"


def test_a_report_retries_when_the_operator_records_the_attempt_meanwhile(
    client: TestClient, namespace: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _start_attempt(client, namespace, attempt=1)
    namespace.set_run_status(run_id, {"phase": "WaitingToRetry"})
    writes: list[int] = []
    record_report = KubernetesCluster.record_report

    def operator_lands_first(
        self: KubernetesCluster, run: dict[str, Any], report: dict[str, Any]
    ) -> None:
        writes.append(run["status"]["attempt"])
        if len(writes) == 1:
            # Between the API's read (attempt 1) and its write, the operator records attempt 2.
            namespace.set_run_status(
                run_id,
                {
                    "phase": "Executing",
                    "attempt": 2,
                    "attempts": [_attempt_entry(run_id, 1), _attempt_entry(run_id, 2)],
                },
            )
        record_report(self, run, report)

    monkeypatch.setattr(KubernetesCluster, "record_report", operator_lands_first)
    url = f"/api/v1/runner/runs/{run_id}/attempts/2/complete"
    response = client.post(url, json={"ok": True, "output": 2}, headers=_token(run_id, 2))
    assert response.status_code == 204, response.text
    assert writes == [1, 2]
    status = namespace.run(run_id)["status"]
    assert status["attempt"] == 2 and status["report"]["attempt"] == 2


def test_a_report_overtaken_by_a_later_attempt_is_refused(
    client: TestClient, namespace: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _start_attempt(client, namespace, attempt=1)
    record_report = KubernetesCluster.record_report

    def operator_moves_on(
        self: KubernetesCluster, run: dict[str, Any], report: dict[str, Any]
    ) -> None:
        # Between the API's read and its write, attempt 1 ended and attempt 2 was recorded.
        namespace.set_run_status(run_id, {"attempt": 2})
        record_report(self, run, report)

    monkeypatch.setattr(KubernetesCluster, "record_report", operator_moves_on)
    url = f"/api/v1/runner/runs/{run_id}/attempts/1/complete"
    response = client.post(url, json={"ok": True, "output": 1}, headers=_token(run_id, 1))
    assert_error(response, 401, "attempt_ended")
    assert "report" not in namespace.run(run_id)["status"]


@pytest.mark.parametrize("operator_writes", [{"phase": "WaitingToRetry"}, {"phase": "Crashed"}])
def test_a_report_after_the_operator_ended_the_attempt_is_refused(
    client: TestClient,
    namespace: KubeNamespace,
    monkeypatch: pytest.MonkeyPatch,
    operator_writes: dict[str, Any],
) -> None:
    """The operator ends an attempt without moving its number (a retry, a final phase): a
    report written after that would get a 204 and be ignored, so it is refused instead."""
    run_id = _start_attempt(client, namespace, attempt=1)
    record_report = KubernetesCluster.record_report

    def operator_ends_the_attempt(
        self: KubernetesCluster, run: dict[str, Any], report: dict[str, Any]
    ) -> None:
        namespace.set_run_status(run_id, operator_writes)
        record_report(self, run, report)

    monkeypatch.setattr(KubernetesCluster, "record_report", operator_ends_the_attempt)
    url = f"/api/v1/runner/runs/{run_id}/attempts/1/complete"
    response = client.post(url, json={"ok": True, "output": 1}, headers=_token(run_id, 1))
    assert_error(response, 401, "attempt_ended")
    assert "report" not in namespace.run(run_id)["status"]
    # And the runner of an attempt already ended can neither fetch nor report it any more.
    monkeypatch.setattr(KubernetesCluster, "record_report", record_report)
    fetched = client.get(f"/api/v1/runner/runs/{run_id}/attempts/1", headers=_token(run_id, 1))
    assert_error(fetched, 401, "attempt_ended")


def test_a_report_the_cluster_refuses_is_422(
    client: TestClient, namespace: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _start_attempt(client, namespace)
    call = KubernetesCluster._call

    def refuse_status_patches(
        self: KubernetesCluster, kind: str, subject: str | None, method: Any, **kwargs: Any
    ) -> dict[str, Any]:
        if method.__name__ == "patch_namespaced_custom_object_status":
            raise ObjectRejected("status.report: Invalid value")
        return call(self, kind, subject, method, **kwargs)

    monkeypatch.setattr(KubernetesCluster, "_call", refuse_status_patches)
    url = f"/api/v1/runner/runs/{run_id}/attempts/1/complete"
    response = client.post(url, json={"ok": True, "output": 1}, headers=_token(run_id, 1))
    error = assert_error(response, 422, "rejected_by_cluster")
    assert "status.report: Invalid value" in error["message"]


def test_completion_report_is_stored_in_status(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _start_attempt(client, namespace)
    url = f"/api/v1/runner/runs/{run_id}/attempts/1/complete"
    response = client.post(
        url, json={"ok": True, "output": {"x": None}, "error": None}, headers=_token(run_id, 1)
    )
    assert response.status_code == 204, response.text
    status = namespace.run(run_id)["status"]
    report = status["report"]
    assert report["attempt"] == 1 and report["ok"] is True
    # A success completes the run in the same write, its output kept once, in `output`.
    assert status["output"] == {"x": None} and report.get("output") is None
    assert status["phase"] == "Completed"

    failed_run = _start_attempt(client, namespace)
    url = f"/api/v1/runner/runs/{failed_run}/attempts/1/complete"
    failure = {"ok": False, "error": {"type": "ValueError", "message": "bad", "stack": "tb"}}
    assert client.post(url, json=failure, headers=_token(failed_run, 1)).status_code == 204
    failed = namespace.run(failed_run)["status"]
    assert failed["phase"] == "Executing"  # the operator decides: a retry, or the end
    report = failed["report"]
    # kube-apiserver drops the null (the schema's `output` is not nullable): no output is null.
    assert report.get("output") is None
    assert report["error"] == {"type": "ValueError", "message": "bad", "stack": "tb"}


def test_completion_report_is_validated(client: TestClient, namespace: KubeNamespace) -> None:
    run_id = _start_attempt(client, namespace)
    url = f"/api/v1/runner/runs/{run_id}/attempts/1/complete"
    headers = _token(run_id, 1)
    assert_error(client.post(url, json={"ok": False}, headers=headers), 422, "invalid_request")
    too_large = {"ok": True, "output": "x" * (600 * 1024)}
    assert_error(client.post(url, json=too_large, headers=headers), 413, "output_too_large")
    assert_error(
        client.get(f"/api/v1/runner/runs/{run_id}/attempts/one", headers=headers),
        422,
        "invalid_request",
    )
    assert "report" not in namespace.run(run_id)["status"]


def test_expired_token_is_refused_even_for_the_right_attempt(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _start_attempt(client, namespace)
    token = sign_attempt_token(
        RUNNER_SECRET.encode(), run_id, 1, ttl_seconds=1, now=time.time() - 60
    )
    response = client.get(
        f"/api/v1/runner/runs/{run_id}/attempts/1", headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(response, 401, "unauthorized")
