"""Unit tests of auth, the error shape, reports, the report guard and cluster error translation."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import ValidationError

from podtask._contract.json_values import compact_json, stored_size
from podtask._contract.limits import MAX_ERROR_BYTES
from podtask._control.attempt_tokens import sign_attempt_token
from podtask_api.auth import (
    API_KEY_HOLDER,
    Caller,
    KnownKeys,
    api_key_digest,
    authenticate_caller,
    bearer_token,
    match_api_key,
    require_api_key_holder,
    require_attempt_token,
    write_keys,
)
from podtask_api.cluster import (
    ClusterUnavailable,
    ObjectAlreadyExists,
    ObjectNotFound,
    ObjectRejected,
    ResourceNotInstalled,
    report_guard,
    translate_api_error,
)
from podtask_api.errors import ApiError, validation_error
from podtask_api.reports import CompletionReport, attempt_report


def test_api_key_digest_compare() -> None:
    keys = write_keys([api_key_digest("a"), api_key_digest("b").upper()])
    assert match_api_key("a", keys) == keys[0]
    assert match_api_key("b", keys) == keys[1]
    assert match_api_key("c", keys) is None
    assert match_api_key("a", []) is None
    assert api_key_digest("a") == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer") is None
    assert bearer_token(None) is None


def test_require_api_key() -> None:
    known = KnownKeys(write_keys([api_key_digest("k")]))
    assert authenticate_caller("Bearer k", known, b"") == API_KEY_HOLDER
    assert authenticate_caller(None, KnownKeys((), required=False), b"") == API_KEY_HOLDER
    for header in (None, "Bearer nope", "k"):
        with pytest.raises(ApiError) as refused:
            authenticate_caller(header, known, b"")
        assert refused.value.status == 401


def test_require_attempt_token() -> None:
    secret = b"s"
    token = sign_attempt_token(secret, "run-1", 2, ttl_seconds=60)
    require_attempt_token(f"Bearer {token}", secret, "run-1", 2)
    cases = [
        (None, 401),
        ("Bearer garbage", 401),
        (f"Bearer {sign_attempt_token(b'other', 'run-1', 2, ttl_seconds=60)}", 401),
        (
            f"Bearer {sign_attempt_token(secret, 'run-1', 2, ttl_seconds=1, now=time.time() - 10)}",
            401,
        ),
    ]
    for header, status in cases:
        with pytest.raises(ApiError) as refused:
            require_attempt_token(header, secret, "run-1", 2)
        assert refused.value.status == status
    for run, attempt in (("run-2", 2), ("run-1", 1)):
        with pytest.raises(ApiError) as forbidden:
            require_attempt_token(f"Bearer {token}", secret, run, attempt)
        assert forbidden.value.status == 403
    with pytest.raises(ApiError) as disabled:
        require_attempt_token(f"Bearer {token}", b"", "run-1", 2)
    assert disabled.value.status == 503


def test_a_caller_is_an_api_key_holder_or_a_run() -> None:
    secret = b"s"
    keys = KnownKeys(write_keys([api_key_digest("k")]))
    no_keys = KnownKeys((), required=False)
    token = sign_attempt_token(secret, "run-1", 3, ttl_seconds=60)
    assert authenticate_caller("Bearer k", keys, secret) == API_KEY_HOLDER
    assert authenticate_caller(f"Bearer {token}", keys, secret) == Caller("run-1", attempt=3)
    # Keys optional (dev mode): no header is a key holder, a token still a run.
    assert authenticate_caller(None, no_keys, secret) == API_KEY_HOLDER
    assert authenticate_caller(f"Bearer {token}", no_keys, secret) == Caller("run-1", attempt=3)
    expired = sign_attempt_token(secret, "run-1", 3, ttl_seconds=1, now=time.time() - 10)
    cases = [
        (None, True, "an API key is required"),
        ("Bearer nope", True, "API key is not valid"),
        (f"Bearer {expired}", True, "expired"),
        (f"Bearer {expired}", False, "expired"),
        (f"Bearer {sign_attempt_token(b'x', 'run-1', 1, ttl_seconds=60)}", True, "signature"),
    ]
    for header, required, reason in cases:
        with pytest.raises(ApiError, match=reason) as refused:
            authenticate_caller(header, keys if required else no_keys, secret)
        assert refused.value.status == 401
    # Without a secret the API cannot judge tokens: a token is then only a wrong key.
    with pytest.raises(ApiError, match="API key is not valid"):
        authenticate_caller(f"Bearer {token}", keys, b"")


def test_a_run_reads_only_its_children() -> None:
    child = {"spec": {"parentRunId": "run-1"}}
    stranger = {"spec": {"parentRunId": "run-2"}}
    assert Caller("run-1").may_read(child)
    assert not Caller("run-1").may_read(stranger)
    assert not Caller("run-1").may_read({"spec": {}})
    assert API_KEY_HOLDER.may_read(stranger) and API_KEY_HOLDER.may_read({})
    require_api_key_holder(API_KEY_HOLDER, "list runs")
    with pytest.raises(ApiError, match="may not list runs") as forbidden:
        require_api_key_holder(Caller("run-1"), "list runs")
    assert forbidden.value.status == 403


def test_validation_error_names_each_field() -> None:
    error = validation_error(
        [
            {
                "loc": ("body", "options", "machine"),
                "msg": "unknown machine",
                "type": "value_error",
            },
            {
                "loc": ("body", "options", "colour"),
                "msg": "Extra inputs",
                "type": "extra_forbidden",
            },
        ]
    )
    assert error.status == 422
    assert error.code == "invalid_request"
    assert "options.colour" in error.message and "options.machine" in error.message
    assert error.details == [
        {"field": "options.machine", "message": "unknown machine", "type": "value_error"},
        {"field": "options.colour", "message": "Extra inputs", "type": "extra_forbidden"},
    ]
    malformed = validation_error(
        [{"loc": ("body", 5), "msg": "JSON decode", "type": "json_invalid"}]
    )
    assert (malformed.status, malformed.code) == (400, "invalid_json")


def test_report_is_stored_in_full_with_nulls() -> None:
    ok = attempt_report(CompletionReport(ok=True, output={"a": None}), 2)
    assert ok["attempt"] == 2 and ok["ok"] is True
    assert ok["output"] == {"a": None}
    assert ok["error"] is None
    assert "reportedAt" in ok
    failed = attempt_report(
        CompletionReport.model_validate(
            {"ok": False, "output": None, "error": {"type": "E", "message": "m", "stack": None}}
        ),
        1,
    )
    assert failed["error"] == {"type": "E", "message": "m", "stack": None}


def test_report_checks() -> None:
    with pytest.raises(ValidationError, match="must say what the error was"):
        CompletionReport.model_validate({"ok": False})
    with pytest.raises(ValidationError):
        CompletionReport.model_validate({"ok": "yes"})
    with pytest.raises(ApiError) as too_large:
        attempt_report(CompletionReport(ok=True, output="x" * (600 * 1024)), 1)
    assert too_large.value.status == 413


def test_a_reported_error_keeps_the_traceback_tail_within_its_bytes() -> None:
    stack = "head\n" + "<" * MAX_ERROR_BYTES + "\nValueError: the cause"
    error = {"type": "ValueError", "message": "m" * 10_000, "stack": stack}
    stored = attempt_report(CompletionReport(ok=False, error=error), 1)["error"]
    assert stored["stack"].endswith("ValueError: the cause")
    assert "head" not in stored["stack"]
    assert len(stored["message"]) < 10_000
    assert stored_size(compact_json(stored)) <= MAX_ERROR_BYTES


def _status(code: int, message: str, **details: str) -> str:
    return json.dumps({"kind": "Status", "code": code, "message": message, "details": details})


def test_translate_api_error() -> None:
    def t(status: int | None, body: str, name: str | None = "hello") -> object:
        return translate_api_error(status, body, kind="Task", name=name)

    assert isinstance(t(404, _status(404, 'tasks "hello" not found', name="hello")), ObjectNotFound)
    assert isinstance(
        t(404, _status(404, "the server could not find the requested resource")),
        ResourceNotInstalled,
    )
    assert isinstance(
        t(404, _status(404, 'namespaces "x" not found', name="x"), None), ResourceNotInstalled
    )
    assert isinstance(t(409, _status(409, "exists")), ObjectAlreadyExists)
    assert isinstance(t(422, _status(422, "invalid")), ObjectRejected)
    unavailable = t(500, "not json")
    assert isinstance(unavailable, ClusterUnavailable) and unavailable.status == 503
    forbidden = t(403, _status(403, "forbidden"))
    assert isinstance(forbidden, ClusterUnavailable) and forbidden.status == 502


def test_report_guard_tests_the_attempt_as_read() -> None:
    run = {"metadata": {"name": "run-1", "resourceVersion": "41"}, "status": {"attempt": 2}}
    assert report_guard(run) == [{"op": "test", "path": "/status/attempt", "value": 2}]
    run["status"]["phase"] = "Executing"
    assert report_guard(run) == [
        {"op": "test", "path": "/status/attempt", "value": 2},
        {"op": "test", "path": "/status/phase", "value": "Executing"},
    ]
    # Before the operator wrote an attempt, nothing but the resourceVersion pins the run.
    for status in ({}, {"status": {}}, {"status": {"phase": "Queued"}}):
        unrecorded = {"metadata": {"name": "run-1", "resourceVersion": "41"}, **status}
        assert report_guard(unrecorded) == [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "41"}
        ]


def test_a_report_of_success_completes_the_run_in_the_same_write() -> None:
    from datetime import UTC, datetime

    from podtask._contract.resources import TaskRunStatus
    from podtask._contract.run_endings import completed_by_report
    from podtask_api.reports import report_writes
    from podtask_devcluster.patches import json_patch

    now = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    executing = {
        "phase": "Executing",
        "attempt": 1,
        "startedAt": "2026-01-01T00:00:00Z",
        "attempts": [
            {"number": 1, "pod": "r-1", "machine": "micro", "startedAt": "2026-01-01T00:00:00Z"}
        ],
    }
    run = {"metadata": {"name": "r"}, "status": executing}
    ok = attempt_report(CompletionReport(ok=True, output={"x": None}), 1)
    status = TaskRunStatus.model_validate(json_patch(run, report_writes(run, ok, now))["status"])
    assert status.phase == "Completed" and status.output == {"x": None}
    assert status.report is not None and status.report.output is None and status.report.ok
    assert status.attempts[0].finished_at == now and status.attempts[0].reason == "Completed"
    assert status.conditions[-1].reason == "Completed" and status.duration == "5.0s"
    assert completed_by_report(status)  # the operator settles it once its pod ends

    # A failure is only recorded: the operator decides (a retry, or the end).
    failed = attempt_report(
        CompletionReport.model_validate({"ok": False, "error": {"type": "E", "message": "m"}}), 1
    )
    assert report_writes(run, failed, now) == [
        {"op": "add", "path": "/status/report", "value": failed}
    ]
    # So is a success the token proves but the run does not record yet (the operator records
    # its attempt whatever else changed, then completes it).
    for unrecorded in ({}, {"phase": "Queued"}, {**executing, "attempt": 0, "attempts": []}):
        early = {"metadata": {"name": "r"}, "status": unrecorded}
        assert [op["path"] for op in report_writes(early, ok, now)] == ["/status/report"]
