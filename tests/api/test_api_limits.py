"""Each limit of `podtask._contract.limits` where its part enters the API: a refusal in the API's
error shape that names the field and the limit, and the value at the limit still taken."""

from __future__ import annotations

import json
from typing import Any

from api_fixtures import assert_error, attempt_token, bearer
from fastapi.testclient import TestClient

from podtask._contract.limits import (
    MAX_JSON_DEPTH,
    MAX_METADATA_BYTES,
    MAX_OUTPUT_BYTES,
    MAX_PAYLOAD_BYTES,
)
from tests.embedded_kube import KubeNamespace

TRIGGER = "/api/v1/tasks/hello-world/trigger"
BATCH = "/api/v1/tasks/batch"


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def _raw(client: TestClient, url: str, body: bytes, **headers: str) -> Any:
    return client.post(url, content=body, headers={"Content-Type": "application/json", **headers})


def _fields(error: dict[str, Any]) -> list[str]:
    return [detail["field"] for detail in error["details"]]


def test_a_payload_may_nest_64_levels_and_no_more(client: TestClient) -> None:
    assert client.post(TRIGGER, json={"payload": nested(MAX_JSON_DEPTH)}).status_code == 201
    error = assert_error(
        client.post(TRIGGER, json={"payload": {"a": nested(MAX_JSON_DEPTH)}}),
        422,
        "invalid_payload",
    )
    assert _fields(error)[0].startswith("payload.a.0.0")
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error["message"]


def test_a_body_nested_hundreds_of_levels_is_422_not_500(client: TestClient) -> None:
    for levels in (256, 989, 5000):
        body = b'{"payload": ' + b"[" * levels + b"]" * levels + b"}"
        error = assert_error(_raw(client, TRIGGER, body), 422, "invalid_request")
        assert "nest deeper than" in error["message"]


def test_the_payload_limit_counts_bytes_as_kubernetes_stores_them(client: TestClient) -> None:
    # 100 Ki `<` are 100 KiB of UTF-8 but 600 KiB stored: Go escapes each as \u003c.
    error = assert_error(
        client.post(TRIGGER, json={"payload": "<" * (100 * 1024)}), 413, "payload_too_large"
    )
    assert error["details"] == {"size": 6 * 100 * 1024 + 2, "limit": MAX_PAYLOAD_BYTES}


def test_metadata_is_limited_in_size_and_depth(client: TestClient) -> None:
    at_limit = {"k": "x" * (MAX_METADATA_BYTES - 10)}
    assert client.post(TRIGGER, json={"options": {"metadata": at_limit}}).status_code == 201
    over = {"k": "x" * MAX_METADATA_BYTES}
    error = assert_error(
        client.post(TRIGGER, json={"options": {"metadata": over}}), 422, "invalid_request"
    )
    assert _fields(error) == ["options.metadata"]
    assert f"over the limit of {MAX_METADATA_BYTES} bytes" in error["message"]
    deep = {"k": nested(MAX_JSON_DEPTH)}
    error = assert_error(
        client.post(TRIGGER, json={"options": {"metadata": deep}}), 422, "invalid_request"
    )
    assert _fields(error) == ["options.metadata"]
    assert "metadata.k.0.0" in error["message"] and f"{MAX_JSON_DEPTH} levels" in error["message"]


def test_batch_items_are_limited_and_named(client: TestClient) -> None:
    items = [
        {"task": "hello-world"},
        {"task": "hello-world", "payload": {"deep": nested(MAX_JSON_DEPTH)}},
    ]
    error = assert_error(client.post(BATCH, json={"items": items}), 422, "invalid_payload")
    assert _fields(error)[0].startswith("items.1.payload.deep.0")
    items = [{"task": "hello-world", "options": {"metadata": {"k": "x" * MAX_METADATA_BYTES}}}]
    error = assert_error(client.post(BATCH, json={"items": items}), 422, "invalid_request")
    assert _fields(error) == ["items.0.options.metadata"]


def test_a_replayed_payload_is_limited_as_a_trigger_is(client: TestClient) -> None:
    run_id = client.post(TRIGGER, json={"payload": 1}).json()["id"]
    url = f"/api/v1/runs/{run_id}/replay"
    error = assert_error(
        client.post(url, json={"payload": nested(MAX_JSON_DEPTH + 1)}), 422, "invalid_payload"
    )
    assert _fields(error)[0].startswith("payload.0")


def test_values_no_field_can_take_are_named_by_their_path(client: TestClient) -> None:
    cases = {
        b'{"payload": {"a": ["\\ud800"]}}': "payload.a.0",
        b'{"payload": {"\\udfff": 1}}': 'payload["\\udfff"]',
        b'{"options": {"tags": ["ok", "\\udc00"]}}': "options.tags.1",
        b'{"options": {"idempotencyKey": "k\\ud800"}}': "options.idempotencyKey",
        b'{"payload": {"n": 9223372036854775808}}': "payload.n",
        b'{"payload": [1e400]}': "payload.0",
    }
    for body, field in cases.items():
        error = assert_error(_raw(client, TRIGGER, body), 422, "invalid_request")
        assert _fields(error) == [field], body
        assert field in error["message"]
    assert _raw(client, TRIGGER, b'{"payload": 9223372036854775807}').status_code == 201


def test_bodies_that_are_not_json_or_not_utf8_are_400(client: TestClient) -> None:
    for body in (
        b'{"payload": NaN}',
        b'{"payload": -Infinity}',
        b'{"payload": "\xed\xa0\x80"}',  # a surrogate encoded as if it were UTF-8
        b'{"payload": "\xff"}',
        b'{"payload": ',
    ):
        error = assert_error(_raw(client, TRIGGER, body), 400, "invalid_json")
        assert error["message"].startswith("the request body is not"), body
    big = b'{"payload": ' + b"1" * 5000 + b"}"
    assert_error(_raw(client, TRIGGER, big), 422, "invalid_request")


def _started(client: TestClient, namespace: KubeNamespace) -> tuple[str, dict[str, str]]:
    run_id: str = client.post(TRIGGER, json={"payload": 1}).json()["id"]
    attempt = {"number": 1, "pod": f"{run_id}-1", "machine": "micro"}
    namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1, "attempts": [attempt]})
    return f"/api/v1/runner/runs/{run_id}/attempts/1/complete", bearer(attempt_token(run_id))


def test_a_report_output_is_limited_in_depth_and_stored_size(
    client: TestClient, namespace: KubeNamespace
) -> None:
    url, headers = _started(client, namespace)
    deep = {"ok": True, "output": nested(MAX_JSON_DEPTH + 1)}
    error = assert_error(client.post(url, json=deep, headers=headers), 422, "invalid_output")
    assert _fields(error)[0].startswith("output.0")
    escaped = {"ok": True, "output": "&" * (MAX_OUTPUT_BYTES // 6 + 1)}
    error = assert_error(client.post(url, json=escaped, headers=headers), 413, "output_too_large")
    assert error["details"]["limit"] == MAX_OUTPUT_BYTES


def test_a_report_error_with_a_huge_traceback_is_stored_cut(
    client: TestClient, namespace: KubeNamespace
) -> None:
    url, headers = _started(client, namespace)
    error = {"type": "ValueError", "message": "<" * 100_000, "stack": "x\n" * 200_000 + "cause"}
    response = client.post(url, content=json.dumps({"ok": False, "error": error}), headers=headers)
    assert response.status_code == 204, response.text
    stored = namespace.run(url.split("/")[5])["status"]["report"]["error"]
    assert stored["stack"].endswith("cause") and "truncated" in stored["message"]
