"""API keys: the keys' Secret document, the key store's cache, write and read-only keys on
every kind of endpoint over the embedded cluster, and no secret in the API's own log."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import (
    API_KEY,
    HELLO,
    READ_KEY,
    RUNNER_SECRET,
    WRITE_KEY,
    assert_error,
    attempt_token,
    bearer,
    free_port,
    settings_for,
)
from fastapi.testclient import TestClient
from kubernetes import client as kube_client

from podtask._control.api_keys import (
    API_KEYS_DATA_KEY,
    API_KEYS_SECRET,
    ApiKeySecret,
    KeyAccess,
    MalformedApiKeys,
    StoredApiKey,
    api_key_digest,
    generate_api_key,
    parse_stored_keys,
    secret_data,
    secret_keys,
    stored_keys_json,
    with_dev_key,
    with_key,
    without_key,
)
from podtask_api.app import create_app
from podtask_api.auth import (
    API_KEY_HOLDER,
    READ_ONLY_KEY_HOLDER,
    ApiKeyStore,
    ApiKeysUnavailable,
    authenticate_caller,
    match_api_key,
    write_keys,
)
from podtask_api.errors import ApiError
from tests.embedded_kube import EmbeddedKube, KubeNamespace


def stored(name: str, key: str, access: KeyAccess = KeyAccess.WRITE) -> StoredApiKey:
    return StoredApiKey(name=name, sha256=api_key_digest(key), access=access)


# -- the Secret's document ----------------------------------------------------------------------


def test_the_document_round_trips_and_defaults_to_write() -> None:
    keys = [stored("ci", "a"), stored("grafana", "b", KeyAccess.READ)]
    assert parse_stored_keys(stored_keys_json(keys)) == keys
    assert secret_keys(secret_data(keys)) == keys
    assert secret_keys(None) == [] and secret_keys({"other": "eA=="}) == []
    [plain] = parse_stored_keys(f'[{{"name": "x", "sha256": "{api_key_digest("x").upper()}"}}]')
    assert plain.access == KeyAccess.WRITE and plain.sha256 == api_key_digest("x")
    assert generate_api_key().startswith("pt_") and generate_api_key() != generate_api_key()


def test_a_malformed_document_names_the_problem_without_echoing_it() -> None:
    pasted_key = "pt_this_is_a_key_not_a_digest"
    cases = [
        ("{}", "list"),
        (f'[{{"name": "ci", "sha256": "{pasted_key}"}}]', "0.sha256"),
        (f'[{{"name": "ci", "sha256": "{api_key_digest("k")}", "access": "admin"}}]', "access"),
        ("not json", "document"),
    ]
    for text, where in cases:
        with pytest.raises(MalformedApiKeys, match=where) as malformed:
            parse_stored_keys(text)
        assert pasted_key not in str(malformed.value)
    with pytest.raises(MalformedApiKeys, match="base64"):
        secret_keys({API_KEYS_DATA_KEY: "***"})


def test_adding_replacing_and_revoking_keys() -> None:
    keys = with_key([stored("ci", "a")], stored("grafana", "b", KeyAccess.READ))
    assert [k.name for k in keys] == ["ci", "grafana"]
    with pytest.raises(ValueError, match="already an API key named 'ci'"):
        with_key(keys, stored("ci", "c"))
    assert without_key(keys, "ci") == [keys[1]]
    with pytest.raises(KeyError):
        without_key(keys, "nobody")
    dev = with_dev_key(with_dev_key(keys, "dev", api_key_digest("d1")), "dev", api_key_digest("d2"))
    assert [(k.name, k.sha256) for k in dev if k.name == "dev"] == [("dev", api_key_digest("d2"))]


# -- judging a key ------------------------------------------------------------------------------


class CountingKeys(list[StoredApiKey]):
    """Keys that count how many of them a match looked at."""

    looked_at = 0

    def __iter__(self) -> Iterator[StoredApiKey]:
        for key in super().__iter__():
            self.looked_at += 1
            yield key


def test_every_candidate_is_compared_and_the_access_is_the_matched_keys() -> None:
    keys = CountingKeys([stored("w", "a"), stored("r", "b", KeyAccess.READ), stored("x", "c")])
    assert match_api_key("a", keys) == keys[0]
    assert keys.looked_at == 3  # no early exit on the first key
    known = ApiKeyStore(keys, dev_mode=False, read_secret=None).known()
    assert authenticate_caller("Bearer a", known, b"") == API_KEY_HOLDER
    assert authenticate_caller("Bearer b", known, b"") == READ_ONLY_KEY_HOLDER


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_secret_is_read_at_most_once_per_cache_period() -> None:
    reads: list[list[StoredApiKey]] = [[stored("a", "a")], [stored("b", "b")]]
    calls = []

    def read() -> list[StoredApiKey]:
        calls.append(1)
        return reads[min(len(calls), len(reads)) - 1]

    clock = Clock()
    store = ApiKeyStore([], dev_mode=False, read_secret=read, cache_seconds=10, clock=clock)
    assert [k.name for k in store.known().keys] == ["a"]
    clock.now += 9
    assert [k.name for k in store.known().keys] == ["a"] and len(calls) == 1
    clock.now += 1
    assert [k.name for k in store.known().keys] == ["b"] and len(calls) == 2


def test_fresh_keys_are_told_without_a_read_until_the_cache_period_ends_or_a_change() -> None:
    calls = []

    def read() -> list[StoredApiKey]:
        calls.append(1)
        return [stored("a", "a")]

    clock = Clock()
    store = ApiKeyStore([], dev_mode=False, read_secret=read, cache_seconds=10, clock=clock)
    assert store.fresh() is None  # never read: a read is due (in a thread)
    known = store.known()
    clock.now += 9
    assert store.fresh() == known and len(calls) == 1
    clock.now += 1
    assert store.fresh() is None  # as old as the cache period: read again
    store.known()
    assert store.fresh() is not None
    store.forget()  # this process changed the Secret (a key created or revoked)
    assert store.fresh() is None and len(calls) == 2
    # Without a Secret there is nothing to read: the configured keys are always fresh.
    configured = ApiKeyStore(write_keys([api_key_digest("env")]), dev_mode=False, read_secret=None)
    configured.known()
    clock.now += 3600
    fresh = configured.fresh()
    assert fresh is not None and authenticate_caller("Bearer env", fresh, b"") == API_KEY_HOLDER


def test_an_unreadable_secret_keeps_the_last_keys_or_refuses_to_guess() -> None:
    clock = Clock()
    outcome: list[Any] = [ApiKeysUnavailable("the Secret ns/keys cannot be read (HTTP 403)")]

    def read() -> list[StoredApiKey]:
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        keys: list[StoredApiKey] = outcome[0]
        return keys

    configured = write_keys([api_key_digest("env")])
    store = ApiKeyStore(configured, dev_mode=True, read_secret=read, cache_seconds=1, clock=clock)
    # Never read: a configured key still works; any other key cannot be judged (503, not 401).
    known = store.known()
    assert known.required and known.problem is not None
    assert authenticate_caller("Bearer env", known, b"") == API_KEY_HOLDER
    with pytest.raises(ApiError) as unavailable:
        authenticate_caller("Bearer other", known, b"")
    assert unavailable.value.status == 503 and unavailable.value.code == "api_keys_unavailable"
    with pytest.raises(ApiError) as missing:
        authenticate_caller(None, known, b"")
    assert missing.value.status == 401

    outcome[0] = [stored("secret", "from-secret")]
    clock.now += 1
    assert authenticate_caller("Bearer from-secret", store.known(), b"") == API_KEY_HOLDER
    # Unreadable again: the keys last read still count.
    outcome[0] = ApiKeysUnavailable("down")
    clock.now += 1
    known = store.known()
    assert known.problem is None
    assert authenticate_caller("Bearer from-secret", known, b"") == API_KEY_HOLDER


def test_dev_mode_is_open_only_while_no_key_exists_anywhere() -> None:
    def no_keys() -> list[StoredApiKey]:
        return []

    def one_key() -> list[StoredApiKey]:
        return [stored("dev", "d")]

    assert not ApiKeyStore([], dev_mode=True, read_secret=no_keys).known().required
    assert ApiKeyStore([], dev_mode=True, read_secret=one_key).known().required
    assert ApiKeyStore([], dev_mode=False, read_secret=no_keys).known().required
    assert ApiKeyStore([], dev_mode=False, read_secret=None).known().required


def test_configured_digests_must_be_digests_and_are_not_shown() -> None:
    with pytest.raises(ValueError, match="item 1 is not a sha256") as refused:
        write_keys([api_key_digest("a"), "pt_a_pasted_key"])
    assert "pt_a_pasted_key" not in str(refused.value)


# -- over the embedded cluster ------------------------------------------------------------------


@pytest.fixture
def secret_api(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, keys_secret: ApiKeySecret
) -> Iterator[TestClient]:
    """The API with keys from the Secret only, read again on every request."""
    settings = settings_for(embedded_kube, namespace, api_key_hashes="", api_keys_cache_seconds=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _trigger(api: TestClient, key: str) -> httpx.Response:
    return api.post("/api/v1/tasks/hello-world/trigger", json={"payload": 1}, headers=bearer(key))


def test_no_key_and_a_wrong_key_are_401_saying_how_to_send_one(secret_api: TestClient) -> None:
    for headers in ({}, bearer("pt_wrong"), {"Authorization": WRITE_KEY}):
        error = assert_error(
            secret_api.post("/api/v1/tasks/hello-world/trigger", json={}, headers=headers),
            401,
            "unauthorized",
        )
        assert "Authorization: Bearer <key>" in error["message"]


def test_every_endpoint_but_health_refuses_a_caller_without_a_key(secret_api: TestClient) -> None:
    # Each route declares who may call it (routes/access): one that declared nobody would be
    # open. Every operation the document lists, the runner's too, is a 401 without a key.
    paths = secret_api.get("/openapi.json").json()["paths"]
    operations = [(m, t) for t, ops in paths.items() for m in ops if t != "/healthz"]
    assert len(operations) > 10
    for method, template in operations:
        path = re.sub(r"\{attempt\}", "1", re.sub(r"\{(?!attempt\})[^}]*\}", "x", template))
        answer = secret_api.request(method, path, json={})
        assert answer.status_code == 401, (method, path, answer.text)


def test_a_read_only_key_reads_but_never_writes(
    secret_api: TestClient, namespace: KubeNamespace
) -> None:
    created = _trigger(secret_api, WRITE_KEY)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    assert secret_api.get(f"/api/v1/runs/{run_id}", headers=bearer(READ_KEY)).status_code == 200
    listed = secret_api.get("/api/v1/deployments", headers=bearer(READ_KEY))
    assert listed.status_code == 200, listed.text

    writes = [
        ("/api/v1/tasks/hello-world/trigger", {"payload": 1}),
        ("/api/v1/tasks/batch", {"items": [{"task": "hello-world", "payload": 1}]}),
        (f"/api/v1/runs/{run_id}/cancel", None),
        (f"/api/v1/runs/{run_id}/replay", None),
        (f"/api/v1/runs/{run_id}/reschedule", {"delay": 5}),
        ("/api/v1/deployments", {"manifest": {"tasks": [], "queues": []}, "image": "t:1"}),
    ]
    for path, body in writes:
        error = assert_error(
            secret_api.post(path, json=body, headers=bearer(READ_KEY)), 403, "read_only_key"
        )
        assert "read-only" in error["message"], path
    assert namespace.run_names() == [run_id]
    assert "cancelRequestedAt" not in namespace.run(run_id)["spec"]
    # Every endpoint that writes refuses a read-only key (the routers decide, not each route).
    paths = secret_api.get("/openapi.json").json()["paths"]
    for template, operations in paths.items():
        if template.startswith("/api/v1/runner/"):
            continue  # attempt tokens only
        path = re.sub(
            r"\{([^}]*)\}",
            lambda p: run_id if "run" in p[1] else "hello-world" if "task" in p[1] else "q",
            template,
        )
        for method in set(operations) - {"get", "head"}:
            answer = secret_api.request(method, path, json={}, headers=bearer(READ_KEY))
            assert answer.status_code == 403, (method, path, answer.text)


def test_keys_added_or_revoked_in_the_secret_count_without_a_restart(
    secret_api: TestClient, keys_secret: ApiKeySecret
) -> None:
    new_key = generate_api_key()
    assert_error(_trigger(secret_api, new_key), 401, "unauthorized")
    keys_secret.change(lambda keys: with_key(keys, stored("new", new_key)))
    assert _trigger(secret_api, new_key).status_code == 201
    keys_secret.change(lambda keys: without_key(keys, "new"))
    assert_error(_trigger(secret_api, new_key), 401, "unauthorized")


def test_a_malformed_secret_is_503_for_its_keys_and_keeps_configured_keys_working(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    body = {
        "metadata": {"name": API_KEYS_SECRET},
        "data": {API_KEYS_DATA_KEY: base64.b64encode(b'{"not": "a list"}').decode()},
    }
    kube_client.CoreV1Api(embedded_kube.api).create_namespaced_secret(namespace.name, body)
    with TestClient(
        create_app(settings_for(embedded_kube, namespace)), raise_server_exceptions=False
    ) as api:
        error = assert_error(_trigger(api, WRITE_KEY), 503, "api_keys_unavailable")
        assert API_KEYS_SECRET in error["message"] and "malformed" in error["message"]
        assert _trigger(api, API_KEY).status_code == 201


def test_no_payload_output_or_key_reaches_the_apis_log(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, tmp_path: Path
) -> None:
    """The real `python -m podtask_api`, at debug level: its whole output is searched."""
    marker = uuid.uuid4().hex
    payload_secret, output_secret, wrong_key = f"pw-{marker}", f"out-{marker}", f"pt_{marker}"
    settings = settings_for(embedded_kube, namespace)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")},
        "KUBECONFIG": str(embedded_kube.kubeconfig),
        "PODTASK_NAMESPACE": namespace.name,
        "PODTASK_API_KEY_HASHES": settings.api_key_hashes,
        "PODTASK_RUNNER_TOKEN_SECRET": RUNNER_SECRET,
    }
    log_path = tmp_path / "api.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "podtask_api",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--log-level",
                "debug",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120  # generous: the machine may be busy
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
        with httpx.Client(base_url=url, headers=bearer(API_KEY)) as api:
            created = api.post(
                f"/api/v1/tasks/{HELLO.task_id}/trigger",
                json={"payload": {"password": payload_secret}},
            )
            assert created.status_code == 201, created.text
            run_id = created.json()["id"]
            assert payload_secret in api.get(f"/api/v1/runs/{run_id}").text
            assert api.get(f"/api/v1/runs/{run_id}", headers=bearer(wrong_key)).status_code == 401
            namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1})
            token = attempt_token(run_id)
            runner = bearer(token)
            attempt_url = f"/api/v1/runner/runs/{run_id}/attempts/1"
            assert payload_secret in api.get(attempt_url, headers=runner).text
            report = {"ok": True, "output": {"token": output_secret}}
            done = api.post(f"{attempt_url}/complete", json=report, headers=runner)
            assert done.status_code == 204, done.text
    finally:
        process.terminate()
        process.wait(timeout=15)
    logged = log_path.read_text()
    # The access log is there (so the search is not vacuous), with method, path and status.
    assert f'"POST /api/v1/tasks/{HELLO.task_id}/trigger HTTP/1.1" 201' in logged
    for secret in (payload_secret, output_secret, API_KEY, wrong_key, RUNNER_SECRET, token):
        assert secret not in logged, f"{secret!r} is in the API's log"
    assert marker not in logged
