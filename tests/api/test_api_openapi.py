"""`/openapi.json` is complete and accurate: a property-based run of schemathesis against the
real API app over the embedded cluster, and checks of what the document must say.

Schemathesis generates requests from the document, valid ones and invalid ones, for every
operation, sends them through the app, and checks each answer: no 5xx, a status code the
document lists for that operation, the content type and the body it documents. Bounded:
a few examples per operation and a deadline for each. The operations are split in shards,
each a test of its own with its own app, so that `make test`'s workers share them out.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from api_fixtures import API_KEY, HELLO, settings_for
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup

# Imported here, not by `from_asgi` inside a test: pytest rewrites a plugin's modules as they
# are imported, and CPython 3.11.7's compiler can fail on a deep stack ("AST constructor
# recursion depth mismatch", fixed in 3.11.8).
from schemathesis.specs.openapi import schemas as _schemas  # noqa: F401
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from podtask._contract.wire import API_VERSION, GROUP, VERSION
from podtask_api.app import create_app
from tests.embedded_kube import EmbeddedKube

EXAMPLES_PER_OPERATION = 12
SHARDS = 8
DEADLINE_MS = 2000

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def app(embedded_kube: EmbeddedKube) -> Iterator[Any]:
    """The API over a namespace with a task, a queue and a run, so that some requests hit."""
    namespace = embedded_kube.new_namespace("openapi")
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
    yield create_app(settings_for(embedded_kube, namespace))


def _exercise(operation: Any, mode: GenerationMode, failures: list[str]) -> None:
    """Send `EXAMPLES_PER_OPERATION` generated requests of `mode`; record what fails."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=DEADLINE_MS,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.generate],  # every failure is reported as found, not shrunk first
    )
    def exercise(case: Any) -> None:
        try:
            case.call_and_validate(checks=CHECKS)
        except (Failure, FailureGroup) as failure:
            failures.append(f"{operation.label} ({mode.value}): {failure}")

    # Unsatisfiable: nothing in this operation can be made invalid (no parameters, no body).
    with contextlib.suppress(Unsatisfiable):
        exercise()


@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_answer_is_documented_and_no_5xx(app: Any, shard: int) -> None:
    config = schemathesis.Config.from_dict({"headers": {"Authorization": f"Bearer {API_KEY}"}})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    failures: list[str] = []
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()), key=lambda op: op.label
    )
    assert len(operations) >= 15
    for operation in operations[shard::SHARDS]:
        if operation.path.endswith("/events"):
            # An event stream never ends: a valid request would hang here. Its refusals (401,
            # 404, 422) are tested in test_api_run_events.py.
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _exercise(operation, mode, failures)
    assert not failures, "\n\n".join(failures)


def test_the_document_describes_every_endpoint(app: Any) -> None:
    document = app.openapi()
    error_schema = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success, where
            for code in success:
                content = responses[code].get("content")
                if code == "204":
                    assert not content, where
                    continue
                (media,) = content.values()
                assert media["schema"], where  # a model, never a bare "any JSON"
            if path == "/healthz":
                continue
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == error_schema
            documented = set(responses)
            assert {"401", "403", "503"} <= documented, where
            if operation.get("parameters") or "requestBody" in operation:
                assert "422" in documented, where
            if "requestBody" in operation:
                assert {"400", "413"} <= documented, where


def test_the_error_shape_is_a_schema(app: Any) -> None:
    schemas = app.openapi()["components"]["schemas"]
    assert schemas["ErrorResponse"]["required"] == ["error"]
    assert set(schemas["ErrorBody"]["required"]) == {"code", "message", "details"}
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 shape is never answered


def test_every_operation_declares_the_bearer_scheme(app: Any) -> None:
    """So that /docs's Authorize button sends the key: Swagger UI ignores a header
    parameter named Authorization."""
    document = app.openapi()
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            if path == "/healthz":
                assert "security" not in operation, where
                continue
            assert operation["security"] == [{"bearer": []}], where
            names = [p["name"].lower() for p in operation.get("parameters", [])]
            assert "authorization" not in names, where


def test_the_docs_pages_load_nothing_from_elsewhere(app: Any) -> None:
    with TestClient(app) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page)
            assert html.status_code == 200, page
            sources = re.findall(r'(?:src|href)="([^"]+)"', html.text)
            assert sources, page
            for source in sources:
                assert source.startswith("/"), (page, source)
                assert client.get(source).status_code == 200, source
