"""The API's `GET /metrics`: who may read it (any key, or no key with PODTASK_METRICS_PUBLIC),
and what it counts: runs triggered by task, requests by route template, method and status,
requests to Kubernetes by verb and code."""

from __future__ import annotations

import pytest
from api_fixtures import READ_KEY, WRITE_KEY, assert_error, bearer, settings_for
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from podtask._control.api_keys import ApiKeySecret
from podtask_api.app import create_app
from podtask_api.metrics import UNMATCHED, route_label
from tests.embedded_kube import EmbeddedKube, KubeNamespace

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_the_route_label_is_the_template_of_the_route_that_served() -> None:
    app = FastAPI()

    @app.get("/api/v1/runs/{run_id}")
    def run(run_id: str) -> None: ...

    (route,) = (r for r in app.routes if getattr(r, "path", "").startswith("/api/v1/runs"))
    assert route_label({"route": route, "root_path": ""}, "") == "/api/v1/runs/{run_id}"
    # A mount serves under a root path of its own; behind a proxy's prefix too.
    assert route_label({"root_path": "/static"}, "") == "/static/{path}"
    assert route_label({"root_path": "/podtask/static"}, "/podtask") == "/static/{path}"
    assert route_label({"root_path": ""}, "") == UNMATCHED


@pytest.fixture
def keyed_settings(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, keys_secret: ApiKeySecret
) -> dict[str, object]:
    return {"api_key_hashes": "", "api_keys_cache_seconds": 0}


def test_metrics_need_any_key_by_default(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, keyed_settings: dict[str, object]
) -> None:
    settings = settings_for(embedded_kube, namespace, **keyed_settings)
    with TestClient(create_app(settings), raise_server_exceptions=False) as api:
        error = assert_error(api.get("/metrics"), 401, "unauthorized")
        assert "Authorization: Bearer" in error["message"]
        assert_error(api.get("/metrics", headers=bearer("pt_wrong")), 401, "unauthorized")
        for key in (READ_KEY, WRITE_KEY):
            answer = api.get("/metrics", headers=bearer(key))
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("text/plain")
            assert "podtask_api_request_duration_seconds" in answer.text


def test_public_metrics_need_no_key_and_open_nothing_else(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, keyed_settings: dict[str, object]
) -> None:
    settings = settings_for(embedded_kube, namespace, metrics_public=True, **keyed_settings)
    with TestClient(create_app(settings), raise_server_exceptions=False) as api:
        answer = api.get("/metrics")
        assert answer.status_code == 200, answer.text
        # A scraper that asks for OpenMetrics gets it.
        open_metrics = api.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert open_metrics.text.rstrip().endswith("# EOF")
        assert_error(api.get("/api/v1/runs"), 401, "unauthorized")


def test_triggers_requests_and_kube_calls_are_counted(client: TestClient) -> None:
    api = client
    before = samples(api.get("/metrics").text)
    ids = [api.post("/api/v1/tasks/hello-world/trigger", json={}).json()["id"] for _ in range(2)]
    # An idempotency key's second trigger finds its run: one more run, not two.
    for _ in range(2):
        keyed = {"options": {"idempotencyKey": "metrics-once"}}
        assert api.post("/api/v1/tasks/hello-world/trigger", json=keyed).status_code in (200, 201)
    batch = {"items": [{"task": "hello-world", "payload": i} for i in range(3)]}
    assert api.post("/api/v1/tasks/batch", json=batch).status_code == 201
    for run_id in ids:
        assert api.get(f"/api/v1/runs/{run_id}").status_code == 200
    assert api.get("/api/v1/runs/run-nosuchrun").status_code == 404
    assert api.get("/no/such/page").status_code == 404
    assert api.get("/static/favicon.svg").status_code == 200
    assert api.post("/api/v1/tasks/hello-world/trigger", content=b"{not json").status_code == 400
    text = api.get("/metrics").text
    after = samples(text)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("podtask_runs_triggered_total", task="hello-world") == 2 + 1 + 3
    latency = "podtask_api_request_duration_seconds_count"
    trigger = {"route": "/api/v1/tasks/{task_id}/trigger", "method": "POST"}
    assert delta(latency, **trigger, status="201") >= 3
    assert delta(latency, **trigger, status="200") == 1
    run = {"route": "/api/v1/runs/{run_id}", "method": "GET"}
    assert delta(latency, **run, status="200") == 2
    assert delta(latency, **run, status="404") == 1
    assert delta(latency, route=UNMATCHED, method="GET", status="404") == 1
    assert delta(latency, route="/static/{path}", method="GET", status="200") == 1
    # Refused before any route (by the JSON check): no route served it.
    assert delta(latency, route=UNMATCHED, method="POST", status="400") == 1
    # Never a path itself: a run's id is no label value.
    assert not any(run_id in text for run_id in ids)
    kube = "podtask_kube_requests_total"
    assert delta(kube, verb="create", resource="taskruns", code="201") >= 6
    assert delta(kube, verb="get", resource="taskruns", code="404") >= 1
    assert delta(kube, verb="get", resource="tasks", code="200") >= 1
