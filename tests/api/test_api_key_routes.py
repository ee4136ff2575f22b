"""`/api/v1/keys` over the embedded cluster: list (never a key or a digest), create (shown
once, works at once), revoke (stops at once, its sessions too); who may do each; the
Secret's document as the CLI and the chart write it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from api_fixtures import API_KEY, READ_KEY, assert_error, bearer, settings_for
from fastapi.testclient import TestClient

from podtask._control.api_keys import (
    ApiKeySecret,
    KeyAccess,
    StoredApiKey,
    api_key_digest,
    new_api_key,
    parse_stored_keys,
    stored_keys_json,
)
from podtask_api.app import create_app
from tests.embedded_kube import EmbeddedKube, KubeNamespace


@pytest.fixture
def api(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, keys_secret: ApiKeySecret
) -> Iterator[TestClient]:
    """The API with API_KEY configured and the Secret's keys, cached as by default."""
    settings = settings_for(embedded_kube, namespace)
    with TestClient(
        create_app(settings), headers=bearer(API_KEY), raise_server_exceptions=False
    ) as client:
        yield client


def test_a_new_key_records_when_it_was_created_and_old_documents_stay_as_written() -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    key, stored = new_api_key("ci", KeyAccess.READ, now=at)
    assert key.startswith("pt_") and stored.sha256 == api_key_digest(key)
    assert stored.created == at.replace(microsecond=0) and stored.read_only
    assert parse_stored_keys(stored_keys_json([stored])) == [stored]
    old = StoredApiKey(name="old", sha256=api_key_digest("o"))
    assert "created" not in stored_keys_json([old])


def test_keys_are_listed_without_a_key_or_a_digest(api: TestClient) -> None:
    listed = api.get("/api/v1/keys")
    assert listed.status_code == 200, listed.text
    by_name = {k["name"]: k for k in listed.json()["data"]}
    assert by_name["grafana"] == {
        "name": "grafana",
        "access": "read",
        "createdAt": None,
        "configured": False,
    }
    assert {k["name"] for k in by_name.values() if k["configured"]} == {
        "PODTASK_API_KEY_HASHES[0]",
        "PODTASK_API_KEY_HASHES[1]",
    }
    assert api_key_digest(API_KEY) not in listed.text
    # A read-only key may look.
    assert api.get("/api/v1/keys", headers=bearer(READ_KEY)).status_code == 200


def test_a_created_key_is_shown_once_and_works_at_once(
    api: TestClient, keys_secret: ApiKeySecret
) -> None:
    created = api.post("/api/v1/keys", json={"name": "ci-deploys", "access": "read"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "ci-deploys" and body["access"] == "read" and body["createdAt"]
    key = body["key"]
    # The API's cache is 10 s; this process sees its own change at the next request.
    assert api.get("/api/v1/tasks", headers=bearer(key)).status_code == 200
    assert_error(
        api.post("/api/v1/tasks/hello-world/trigger", json={}, headers=bearer(key)),
        403,
        "read_only_key",
    )
    [stored] = [k for k in keys_secret.read() if k.name == "ci-deploys"]
    assert stored.sha256 == api_key_digest(key) and stored.created is not None
    assert key not in api.get("/api/v1/keys").text
    taken = assert_error(api.post("/api/v1/keys", json={"name": "ci-deploys"}), 409, "key_exists")
    assert "ci-deploys" in taken["message"]
    write = api.post("/api/v1/keys", json={"name": "writer"}).json()
    assert write["access"] == "write"


def test_a_revoked_key_stops_at_once(api: TestClient, keys_secret: ApiKeySecret) -> None:
    key = api.post("/api/v1/keys", json={"name": "short-lived"}).json()["key"]
    assert api.get("/api/v1/tasks", headers=bearer(key)).status_code == 200
    revoked = api.delete("/api/v1/keys/short-lived")
    assert revoked.status_code == 204, revoked.text
    assert_error(api.get("/api/v1/tasks", headers=bearer(key)), 401, "unauthorized")
    assert "short-lived" not in {k.name for k in keys_secret.read()}
    assert_error(api.delete("/api/v1/keys/short-lived"), 404, "key_not_found")
    configured = assert_error(
        api.delete("/api/v1/keys/PODTASK_API_KEY_HASHES[1]"), 409, "key_configured"
    )
    assert "PODTASK_API_KEY_HASHES" in configured["message"]


def test_only_a_write_key_creates_or_revokes(api: TestClient, keys_secret: ApiKeySecret) -> None:
    reader = bearer(READ_KEY)
    assert_error(api.post("/api/v1/keys", json={"name": "x"}, headers=reader), 403, "read_only_key")
    assert_error(api.delete("/api/v1/keys/grafana", headers=reader), 403, "read_only_key")
    assert [k.name for k in keys_secret.read()] == ["ci", "grafana"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "has space"},
        {"name": "-leading"},
        {"name": "x" * 101},
        {"name": "ok", "access": "admin"},
        {"name": "ok", "extra": 1},
        {},
    ],
)
def test_a_bad_request_names_the_field(api: TestClient, body: dict[str, object]) -> None:
    error = assert_error(api.post("/api/v1/keys", json=body), 422, "invalid_request")
    assert error["details"], error


def test_without_a_keys_secret_keys_cannot_be_created(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    settings = settings_for(embedded_kube, namespace, api_keys_secret="")
    with TestClient(create_app(settings), headers=bearer(API_KEY)) as api:
        assert len(api.get("/api/v1/keys").json()["data"]) == 2
        error = assert_error(api.post("/api/v1/keys", json={"name": "x"}), 409, "no_keys_secret")
        assert "PODTASK_API_KEYS_SECRET" in error["message"]
