"""No input gets a 500: generated JSON, sent as raw bodies to every write endpoint of the
real API (uvicorn, over the embedded cluster), is answered 2xx or 4xx, always in the API's
error shape, and the keep-alive connection survives a refused request.

The bodies hold what broke the API before: lone surrogates (escaped, and raw as bytes that
are not UTF-8), objects and arrays nested up to about 1,000 levels, integers beyond int64
and beyond what Python converts, NaN and Infinity, odd keys, strings near the size limits,
each put where a field of the endpoint takes JSON (payload, metadata, tags, output, …) or
as the whole body. 2,000 in all (about 15 s); `PODTASK_BAD_INPUT_EXAMPLES` sets another number.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from api_fixtures import API_KEY, HELLO, attempt_token, served, settings_for
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from podtask._contract.limits import MAX_METADATA_BYTES, MAX_PAYLOAD_BYTES, MAX_RUN_METADATA_BYTES
from podtask._contract.schedules import imperative_schedule_name
from podtask._contract.wire import API_VERSION, GROUP, VERSION
from podtask_api.app import create_app
from tests.embedded_kube import EmbeddedKube

EXAMPLES = int(os.environ.get("PODTASK_BAD_INPUT_EXAMPLES", "2000"))
RUN = "run-bad-input-1"
# The schedule the fixture creates with this deduplication key: its id is the key's.
SCHEDULE_KEY = "bad-input"
SCHEDULE = imperative_schedule_name(HELLO.task_id, SCHEDULE_KEY)

# Raw number literals json.dumps would not write (or would write differently).
RAW_NUMBERS = [
    "1e400",
    "-1e400",
    "1" + "0" * 5000,
    "-" + "9" * 400,
    "9223372036854775808",
    "-9223372036854775809",
    "9223372036854775807",
    "123456789012345678901234567890.5",
    "1.7976931348623157e308",
    "5e-324",
    "1e-400",
    "-0",
    "-0.0",
    "0E+0",
    "NaN",
    "Infinity",
    "-Infinity",
]
_RAW = "\x00raw{}\x00"

# Text that may hold lone surrogates and every other code point.
any_text = st.text(st.characters(codec=None, categories=None), max_size=12)
keys = st.one_of(
    any_text,
    st.sampled_from(["", " ", ".", "a.b", "__proto__", "$ref", "\u0000", "é", "🙂", "\ud800"]),
)
big_strings = st.builds(
    lambda base, delta, char: char * max(0, base + delta),
    st.sampled_from([MAX_PAYLOAD_BYTES, MAX_METADATA_BYTES, MAX_RUN_METADATA_BYTES, 8 * 1024]),
    st.integers(-40, 40),
    st.sampled_from(["x", "é", "<", "\u2028", "\\"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.sampled_from(range(len(RAW_NUMBERS))).map(_RAW.format),
)


def _nested(depth: int, inner: Any, as_object: bool) -> Any:
    value = inner
    for _ in range(depth):
        value = {"k": value} if as_object else [value]
    return value


deep_values = st.builds(
    _nested,
    st.one_of(st.integers(1, 80), st.integers(200, 300), st.integers(900, 1100)),
    scalars,
    st.booleans(),
)
json_values = st.one_of(
    st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    ),
    deep_values,
    big_strings,
)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    # Bodies with a hole (`HOLE`) where a generated value goes.
    templates: tuple[Any, ...]
    token: str | None = None


HOLE = "\x00hole\x00"


def _write_endpoints(app: Any) -> list[Endpoint]:
    """Every route of the app that takes a body, with bodies for its JSON fields."""
    templates: dict[str, tuple[Any, ...]] = {
        "/api/v1/tasks/{task_id}/trigger": (
            {"payload": HOLE},
            {"payload": 1, "options": {"metadata": HOLE}},
            {"payload": 1, "options": {"metadata": {"a": HOLE}}},
            {"options": {"tags": [HOLE]}},
            {"options": {"idempotencyKey": HOLE, "concurrencyKey": HOLE}},
            {"options": {"delay": HOLE, "ttl": HOLE, "priority": HOLE}},
        ),
        "/api/v1/tasks/batch": (
            {"items": [{"task": HELLO.task_id, "payload": HOLE}]},
            {"items": [{"task": HELLO.task_id, "options": {"metadata": HOLE}}]},
            {"items": [{"task": HOLE}]},
            {"items": HOLE},
        ),
        "/api/v1/runs/{run_id}/replay": ({"payload": HOLE},),
        "/api/v1/runs/{run_id}/reschedule": ({"delay": HOLE},),
        "/api/v1/runs/{run_id}/cancel": (HOLE,),
        "/api/v1/queues/{name}/pause": (HOLE,),
        "/api/v1/queues/{name}/resume": (HOLE,),
        "/api/v1/queues/{name}/concurrency": ({"concurrencyLimit": HOLE},),
        "/api/v1/deployments": (
            {"manifest": HOLE, "image": "registry.local/tasks:1"},
            {"manifest": {"tasks": [HOLE], "queues": []}, "image": "registry.local/tasks:1"},
            {"manifest": {"tasks": [], "queues": []}, "image": HOLE, "version": HOLE},
        ),
        "/api/v1/schedules": (
            {"task": HOLE, "cron": "0 9 * * *"},
            {"task": HELLO.task_id, "cron": HOLE},
            {"task": HELLO.task_id, "cron": "0 9 * * *", "timezone": HOLE},
            {"task": HELLO.task_id, "cron": "@daily", "externalId": HOLE, "deduplicationKey": HOLE},
            {"task": HELLO.task_id, "cron": "@daily", "active": HOLE},
        ),
        "/api/v1/schedules/{schedule_id}": (
            {"cron": HOLE},
            {"timezone": HOLE},
            {"task": HOLE, "externalId": HOLE},
        ),
        "/api/v1/schedules/{schedule_id}/activate": (HOLE,),
        "/api/v1/schedules/{schedule_id}/deactivate": (HOLE,),
        "/api/v1/keys": ({"name": HOLE}, {"name": "k", "access": HOLE}),
        "/api/v1/keys/{name}": (HOLE,),
        "/api/v1/runner/runs/{run_id}/attempts/{attempt}/complete": (
            {"ok": True, "output": HOLE},
            {"ok": False, "error": {"type": HOLE, "message": HOLE, "stack": HOLE}},
            {"ok": HOLE},
        ),
        "/api/v1/runner/runs/{run_id}/attempts/{attempt}/wait": (
            {"runs": HOLE},
            {"runs": [HOLE], "runCount": HOLE},
            {"until": HOLE},
        ),
        "/api/v1/runner/runs/{run_id}/attempts/{attempt}/wait/resume": (HOLE,),
        "/api/v1/runner/runs/{run_id}/attempts/{attempt}/log": (
            {"offset": HOLE, "text": "x"},
            {"offset": 0, "text": HOLE},
            {"offset": 0, "text": "x", "final": HOLE},
        ),
        "/api/v1/runner/runs/{run_id}/attempts/{attempt}/metadata": (
            {"metadata": HOLE},
            {"metadata": {"a": HOLE}},
        ),
    }
    params = {
        "task_id": HELLO.task_id,
        "run_id": RUN,
        "name": "greetings",
        "attempt": "1",
        "schedule_id": SCHEDULE,
    }
    found = []
    # The app's routes as its document lists them (routers are included lazily).
    for path, operations in app.openapi()["paths"].items():
        for method in sorted(set(operations) & {"post", "put", "patch", "delete"}):
            assert path in templates, f"no bodies for {method} {path}: add them"
            token = attempt_token(RUN) if "/runner/" in path else None
            found.append(
                Endpoint(method.upper(), path.format(**params), (*templates[path], HOLE), token)
            )
    return found


def render(template: Any, value: Any, ascii_only: bool) -> bytes:
    """The body: `template` with `value` in its holes, as JSON bytes that may be no JSON
    at all (raw number literals, NaN, lone surrogates left raw in 'UTF-8')."""
    text = json.dumps(template, ensure_ascii=False)
    try:
        filled = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    except ValueError:  # an integer of more digits than Python writes
        filled = "1" + "0" * 5000
    text = text.replace(json.dumps(HOLE, ensure_ascii=False), filled)
    for index, literal in enumerate(RAW_NUMBERS):
        text = text.replace(json.dumps(_RAW.format(index), ensure_ascii=ascii_only), literal)
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def api(embedded_kube: EmbeddedKube) -> Iterator[tuple[str, list[Endpoint]]]:
    namespace = embedded_kube.new_namespace("badinput")
    namespace.deploy_task(HELLO)
    objects = embedded_kube._objects
    objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace.name,
        "taskqueues",
        {
            "apiVersion": API_VERSION,
            "kind": "TaskQueue",
            "metadata": {"name": "greetings"},
            "spec": {"concurrencyLimit": 2, "paused": False},
        },
    )
    app = create_app(settings_for(embedded_kube, namespace))
    with served(app) as url:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            created = http.post(f"/api/v1/tasks/{HELLO.task_id}/trigger", json={})
            assert created.status_code == 201, created.text
            run = namespace.run(created.json()["id"])
            schedule = {"task": HELLO.task_id, "cron": "@daily", "deduplicationKey": SCHEDULE_KEY}
            scheduled = http.post("/api/v1/schedules", json=schedule)
            assert scheduled.status_code == 201, scheduled.text
        # The runner's endpoints need a run whose attempt 1 is executing.
        body = {**run, "metadata": {"name": RUN, "labels": run["metadata"]["labels"]}}
        namespace.create_run(body)
        namespace.set_run_status(
            RUN,
            {
                "phase": "Executing",
                "attempt": 1,
                "attempts": [{"number": 1, "pod": f"{RUN}-1", "machine": "small-1x"}],
            },
        )
        yield url, _write_endpoints(app)


def _assert_answered(response: httpx.Response, endpoint: Endpoint) -> None:
    where = f"{endpoint.method} {endpoint.path}"
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:500]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details"}, where
        assert error["message"], where


def test_no_generated_body_gets_a_5xx_on_any_write_endpoint(
    api: tuple[str, list[Endpoint]],
) -> None:
    url, endpoints = api
    assert len(endpoints) >= 10
    with httpx.Client(base_url=url, timeout=60) as http:

        @given(
            endpoint=st.sampled_from(endpoints),
            data=st.data(),
            value=json_values,
            ascii_only=st.booleans(),
        )
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        )
        def check(endpoint: Endpoint, data: st.DataObject, value: Any, ascii_only: bool) -> None:
            template = data.draw(st.sampled_from(endpoint.templates))
            headers = {"Authorization": f"Bearer {endpoint.token or API_KEY}"}
            response = http.request(
                endpoint.method,
                endpoint.path,
                content=render(template, value, ascii_only),
                headers={**headers, "Content-Type": "application/json"},
            )
            _assert_answered(response, endpoint)

        check()


def _raw_exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one HTTP/1.1 request on `sock` and read one response (by its Content-Length)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        rest += chunk
    return head + b"\r\n\r\n" + rest


def _post(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.mark.parametrize(
    "body",
    [
        b'{"payload": "\\ud800"}',
        b'{"payload": ' + b"[" * 300 + b"]" * 300 + b"}",
        b'{"payload": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"payload": "\xed\xa0\x80"}',
        b'{"payload": 1e400}',
        b'{"payload": NaN}',
    ],
    ids=["surrogate", "depth-300", "depth-5000", "raw-surrogate", "1e400", "nan"],
)
def test_the_connection_survives_a_refused_request(
    api: tuple[str, list[Endpoint]], body: bytes
) -> None:
    url, _ = api
    parts = urlsplit(url)
    trigger = f"/api/v1/tasks/{HELLO.task_id}/trigger"
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        refused = _raw_exchange(sock, _post(trigger, body))
        status = int(refused.split(b" ", 2)[1])
        assert 400 <= status < 500, refused[:300]
        assert b'"error"' in refused
        # The same connection takes the next request.
        accepted = _raw_exchange(sock, _post(trigger, b'{"payload": 1}'))
        assert accepted.startswith(b"HTTP/1.1 201"), accepted[:300]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT A REQUEST LINE\r\n\r\n",
        b"POST /api/v1/tasks/x/trigger HTTP/1.1\r\nHost: api\r\nContent-Length: nope\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: api\r\nBad Header\r\n\r\n",
    ],
    ids=["request-line", "content-length", "header"],
)
def test_a_request_uvicorn_cannot_parse_gets_the_json_error_shape(
    api: tuple[str, list[Endpoint]], request_bytes: bytes
) -> None:
    url, _ = api
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        answer = _raw_exchange(sock, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request"
    assert "HTTP/1.1" in error["message"]
