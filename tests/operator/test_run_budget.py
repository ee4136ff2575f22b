"""The TaskRun budget of `podtask._contract.limits` holds for what the writers really store.

The largest TaskRun each writer can produce is built by sending its own writes, in order:
the API's create (payload, metadata, tags and keys at their limits), then for each of
`MAX_ATTEMPTS` attempts the operator's status patch that starts it (`status_patch`), the
API's JSON patch of the metadata the task wrote (`status_set`, the largest document on
the last attempt), of the runner's report (`report_writes`, an error far over its cap, or
the largest output on the last attempt) and the operator's status patch that ends it. The
object that results is measured as Kubernetes stores it, applied locally (RFC 6902)
and on the real kube-apiserver, whose etcd refuses a write over 1.5 MiB. Every string is
filled with what costs most stored (`<` takes 6 bytes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest

from podtask._contract.json_values import compact_json, stored_size
from podtask._contract.limits import (
    ETCD_MAX_REQUEST_BYTES,
    MAX_ATTEMPTS,
    MAX_CONCURRENCY_KEY_LENGTH,
    MAX_ERROR_BYTES,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_METADATA_BYTES,
    MAX_OUTPUT_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_RUN_METADATA_BYTES,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_TASK_ID_LENGTH,
    MAX_TASK_RUN_BYTES,
    attempt_error_bytes,
)
from podtask._contract.resources import QueueRef, RetryPolicy, TaskRunSpec, TaskRunStatus, TaskSpec
from podtask._contract.status_patches import status_set
from podtask._contract.wire import API_VERSION, GROUP, VERSION
from podtask_api.cluster import report_guard
from podtask_api.reports import CompletionReport, attempt_report, report_writes
from podtask_api.stored_json import encoded_size
from podtask_api.task_runs import build_task_run
from podtask_api.trigger_requests import TriggerRequest
from podtask_devcluster.control_plane import ControlPlane
from podtask_devcluster.patches import json_patch
from podtask_operator.attempts import classify_attempt
from podtask_operator.lifecycle import end_attempt, start_attempt
from podtask_operator.run_writes import status_patch
from tests.real_crds import install_crds, new_namespace

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
COSTLY = "<"  # 1 character, 6 bytes stored (\u003c)


def _filling(limit: int) -> str:
    """A string whose JSON is as close to `limit` stored bytes as it gets."""
    return COSTLY * ((limit - 2) // 6)


def _pod(exit_code: int) -> dict[str, Any]:
    terminated = {"exitCode": exit_code, "reason": "Error", "message": COSTLY * 100_000}
    return {
        "status": {
            "phase": "Failed" if exit_code else "Succeeded",
            "containerStatuses": [{"state": {"terminated": terminated}}],
        }
    }


class Store(Protocol):
    """Where the writes go: each returns the object as stored after it."""

    def create(self, run: dict[str, Any]) -> dict[str, Any]: ...
    def json_patch_status(self, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]: ...


class LocalStore:
    """The writes applied as RFC 6902 says, as the apiserver applies them."""

    def __init__(self) -> None:
        self.run: dict[str, Any] = {}

    def create(self, run: dict[str, Any]) -> dict[str, Any]:
        self.run = {**run, "metadata": {**run["metadata"], "uid": "0000-1111"}}
        return self.run

    def json_patch_status(self, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        self.run = json_patch(self.run, ops)
        return self.run


class RealStore:
    """The writes sent to a real kube-apiserver, as the API and the operator send them."""

    def __init__(self, control_plane: ControlPlane, namespace: str) -> None:
        self.client = control_plane.client()
        self.path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/taskruns"
        self.stored_bytes = 0

    def _answer(self, response: Any) -> dict[str, Any]:
        assert response.status_code in (200, 201), response.text[:2000]
        self.stored_bytes = max(self.stored_bytes, len(response.content))
        found: dict[str, Any] = response.json()
        return found

    def create(self, run: dict[str, Any]) -> dict[str, Any]:
        return self._answer(self.client.post(self.path, json=run))

    def _patch(self, name: str, body: Any, content_type: str) -> dict[str, Any]:
        return self._answer(
            self.client.patch(
                f"{self.path}/{name}/status",
                headers={"Content-Type": content_type},
                content=compact_json(body),
            )
        )

    def json_patch_status(self, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        return self._patch(name, ops, "application/json-patch+json")


def _largest_trigger() -> dict[str, Any]:
    task = TaskSpec(
        task_id="t" * MAX_TASK_ID_LENGTH,
        image="registry.local/" + "i" * 200,
        module="m" * 200,
        version="v" * 63,
        retry=RetryPolicy(max_attempts=MAX_ATTEMPTS),
        queue=QueueRef(name="q" * 63, concurrency_limit=2),
        machine="large-2x",
        max_duration_seconds=300,
    )
    metadata = many_keys(MAX_METADATA_BYTES)
    request = TriggerRequest.model_validate(
        {
            "payload": _filling(MAX_PAYLOAD_BYTES),
            "options": {
                "metadata": metadata,
                "tags": [COSTLY * MAX_TAG_LENGTH] * MAX_TAGS,
                "idempotencyKey": COSTLY * MAX_IDEMPOTENCY_KEY_LENGTH,
                "concurrencyKey": COSTLY * MAX_CONCURRENCY_KEY_LENGTH,
            },
        }
    )
    assert encoded_size(request.payload, "payload") <= MAX_PAYLOAD_BYTES
    return build_task_run(task, request, "run-" + "x" * 40, parent_run_id="run-" + "p" * 40)


def many_keys(limit: int) -> dict[str, Any]:
    """A JSON object of about `limit` stored bytes in as many keys as fit: what costs most once
    the apiserver has tracked its fields (an object's keys each take room in managedFields,
    unless it is atomic: `resources.ATOMIC_OBJECT`)."""
    document: dict[str, Any] = {f"{n:x}": 0 for n in range(limit // 20)}
    rest = limit - stored_size(compact_json(document)) - len(',"~":')
    document["~"] = _filling(rest)  # and the rest of it as costly as it gets
    assert limit - 6 <= stored_size(compact_json(document)) <= limit
    return document


def largest_metadata() -> dict[str, Any]:
    """The largest metadata document a task can write."""
    return many_keys(MAX_RUN_METADATA_BYTES)


def run_to_the_largest_end(store: Store, ends_ok: bool) -> dict[str, Any]:
    """Every attempt of the largest run, each write sent to `store`; the run as it ends."""
    run = store.create(_largest_trigger())
    name = run["metadata"]["name"]
    spec = TaskRunSpec.model_validate(run["spec"])
    huge = {"type": "E" * 10_000, "message": COSTLY * 100_000, "stack": COSTLY * 1_000_000}
    now = NOW
    for number in range(1, MAX_ATTEMPTS + 1):
        status = TaskRunStatus.model_validate(run.get("status") or {})
        started = start_attempt(name, spec, status, now)
        run = store.json_patch_status(name, status_patch(run.get("status"), status, started))
        last = number == MAX_ATTEMPTS
        if last:
            write = status_set(run.get("status"), "metadata", largest_metadata())
            run = store.json_patch_status(name, [*report_guard(run), write])
        if last and ends_ok:
            report = CompletionReport(ok=True, output=_filling(MAX_OUTPUT_BYTES))
        else:
            report = CompletionReport.model_validate({"ok": False, "error": huge})
        run = store.json_patch_status(name, report_writes(run, attempt_report(report, number), now))
        status = TaskRunStatus.model_validate(run["status"])
        if status.phase == "Completed":
            continue  # the API completed it as it recorded the report
        result = classify_attempt(_pod(0 if report.ok else 1), status.report, number)
        assert result is not None
        now += timedelta(seconds=1)
        ended = end_attempt(spec, status, result, now).status
        run = store.json_patch_status(name, status_patch(run["status"], status, ended))
    return run


def _check_the_parts(run: dict[str, Any], ends_ok: bool) -> None:
    status = run["status"]
    assert len(status["attempts"]) == MAX_ATTEMPTS
    share = attempt_error_bytes(MAX_ATTEMPTS)
    for attempt in status["attempts"]:
        if attempt.get("error"):
            assert stored_size(compact_json(attempt["error"])) <= share
    if status.get("error"):
        assert stored_size(compact_json(status["error"])) <= MAX_ERROR_BYTES
    assert status["metadata"] == largest_metadata()
    if ends_ok:
        assert status["phase"] == "Completed"
        assert status["output"] == _filling(MAX_OUTPUT_BYTES)
        assert "output" not in status["report"]  # the output is stored once
    else:
        assert status["phase"] == "Failed"


@pytest.mark.parametrize("ends_ok", [True, False], ids=["completed", "failed"])
def test_the_largest_task_run_the_writers_make_fits_the_budget(ends_ok: bool) -> None:
    run = run_to_the_largest_end(LocalStore(), ends_ok)
    _check_the_parts(run, ends_ok)
    size = stored_size(compact_json(run))
    assert size <= MAX_TASK_RUN_BYTES < ETCD_MAX_REQUEST_BYTES, size


def test_the_operator_moves_the_output_out_of_the_report_when_the_run_completes() -> None:
    """Only the report's output goes: its attempt, ok and time stay, as the API wrote them."""
    store = LocalStore()
    run = run_to_the_largest_end(store, ends_ok=True)
    report = run["status"]["report"]
    assert report["attempt"] == MAX_ATTEMPTS and report["ok"] is True
    assert "reportedAt" in report and "output" not in report


def test_a_real_apiserver_stores_the_largest_task_run(real_control_plane: ControlPlane) -> None:
    install_crds(real_control_plane)
    store = RealStore(real_control_plane, new_namespace(real_control_plane, "budget"))
    run = run_to_the_largest_end(store, ends_ok=True)
    _check_the_parts(run, ends_ok=True)
    assert run["apiVersion"] == API_VERSION
    # As the apiserver returns it (managedFields and all): what etcd holds, with room.
    assert store.stored_bytes < ETCD_MAX_REQUEST_BYTES, store.stored_bytes
