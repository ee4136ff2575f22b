"""Fixtures for the API tests: the app over the embedded cluster, in a namespace of its own
with one deployed task."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from podtask.resources import QueueRef, RetryPolicy, TaskSpec
from podtask_api.app import create_app
from podtask_api.auth import api_key_digest
from podtask_api.settings import ApiSettings

from tests.embedded_kube import EmbeddedKube, KubeNamespace

API_KEY = "pt_test_key"
RUNNER_SECRET = "api-test-runner-secret"

HELLO = TaskSpec(
    task_id="hello-world",
    image="registry.local/tasks:1",
    module="tasks.hello",
    version="20240501.1",
    retry=RetryPolicy(max_attempts=5),
    queue=QueueRef(name="greetings", concurrency_limit=2),
    machine="small-1x",
    max_duration_seconds=300,
)


def api_settings(**overrides: object) -> ApiSettings:
    values: dict[str, object] = {
        "api_key_hashes": f"{api_key_digest('other-key')}, {api_key_digest(API_KEY).upper()}",
        "runner_token_secret": RUNNER_SECRET,
        **overrides,
    }
    return ApiSettings.model_validate(values)


def settings_for(kube: EmbeddedKube, namespace: KubeNamespace, **overrides: object) -> ApiSettings:
    """Settings that point the API at `namespace` of the embedded cluster."""
    return api_settings(namespace=namespace.name, kubeconfig=str(kube.kubeconfig), **overrides)


@pytest.fixture
def namespace(embedded_kube: EmbeddedKube) -> KubeNamespace:
    """A fresh namespace with HELLO deployed in it."""
    fresh = embedded_kube.new_namespace("api")
    fresh.deploy_task(HELLO)
    return fresh


@pytest.fixture
def client(embedded_kube: EmbeddedKube, namespace: KubeNamespace) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings_for(embedded_kube, namespace)),
        headers={"Authorization": f"Bearer {API_KEY}"},
        raise_server_exceptions=False,
    ) as test_client:
        yield test_client
