"""Fixtures for the API tests: the app over the embedded cluster, in a namespace of its own
with one deployed task."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from podtask._control.api_keys import ApiKeySecret, KeyAccess, StoredApiKey
from podtask._control.attempt_tokens import sign_attempt_token
from podtask.client import PodtaskClient
from podtask_api.app import create_app
from podtask_api.auth import api_key_digest
from podtask_api.http_protocol import ApiServer, server_config
from podtask_api.settings import ApiSettings
from podtask_devcluster.ports import free_port
from tests.embedded_kube import EmbeddedKube, KubeNamespace
from tests.task_specs import HELLO

API_KEY = "pt_test_key"
RUNNER_SECRET = "api-test-runner-secret"
# Keys in the namespace's keys' Secret (`keys_secret`): "ci" may write, "grafana" only read.
WRITE_KEY = "pt_write_" + "w" * 20
READ_KEY = "pt_read_" + "r" * 20


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
def keys_secret(embedded_kube: EmbeddedKube, namespace: KubeNamespace) -> ApiKeySecret:
    """The namespace's keys' Secret, holding WRITE_KEY ("ci") and READ_KEY ("grafana")."""
    secret = ApiKeySecret(embedded_kube.api, namespace.name)
    secret.change(
        lambda keys: [
            StoredApiKey(name="ci", sha256=api_key_digest(WRITE_KEY)),
            StoredApiKey(name="grafana", sha256=api_key_digest(READ_KEY), access=KeyAccess.READ),
        ]
    )
    return secret


@pytest.fixture
def client(embedded_kube: EmbeddedKube, namespace: KubeNamespace) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings_for(embedded_kube, namespace)),
        headers={"Authorization": f"Bearer {API_KEY}"},
        raise_server_exceptions=False,
    ) as test_client:
        yield test_client


@pytest.fixture
def signed_in_browser(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> Iterator[TestClient]:
    """The API as a browser signed in to the dashboard reaches it: the session cookie, no
    Authorization."""
    settings = settings_for(embedded_kube, namespace)
    with TestClient(
        create_app(settings), raise_server_exceptions=False, follow_redirects=False
    ) as client:
        form = client.get("/sign-in")
        token = re.search(r'name="form_token" value="([^"]+)"', form.text)
        assert token is not None
        signed = client.post("/sign-in", data={"key": API_KEY, "form_token": token[1]})
        assert signed.status_code == 303, signed.text
        yield client


@pytest.fixture
def served_client(embedded_kube: EmbeddedKube, namespace: KubeNamespace) -> Iterator[PodtaskClient]:
    """`podtask.client`'s client of the API served by uvicorn over `namespace`."""
    app = create_app(settings_for(embedded_kube, namespace))
    with served(app) as url, PodtaskClient(api_url=url, api_key=API_KEY) as podtask_client:
        yield podtask_client


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The error of a response in the API's one error shape, with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    return error


def attempt_token(run_id: str, attempt: int = 1, *, ttl: float = 60) -> str:
    """The token the operator gives the pod of `attempt` of `run_id`."""
    return sign_attempt_token(RUNNER_SECRET.encode(), run_id, attempt, ttl_seconds=ttl)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def served(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """`app` served by uvicorn on `port` (a free local one by default), in a thread; yields
    its base URL."""
    port = port or free_port()
    server = ApiServer(server_config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
