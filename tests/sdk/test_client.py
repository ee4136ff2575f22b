"""Unit tests of the client's pure parts: options and payloads on the wire, batch items,
results and `unwrap`, configuration, API errors and the polling backoff.

The client against the real API is in tests/api/test_api_client.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel

from podtask._authoring.run_results import RunFailedError, RunHandle, RunResult, is_finished
from podtask._authoring.trigger_options import (
    BatchItem,
    as_batch_item,
    batch_body,
    options_to_wire,
    trigger_body,
)
from podtask._contract.resources import RunError, RunPhase
from podtask.client import (
    MAX_POLL_SECONDS,
    ClientConfig,
    ClientNotConfiguredError,
    PodtaskApiError,
    api_error,
    poll_delay,
)


def test_options_are_sent_camel_case_without_unset_ones() -> None:
    wire = options_to_wire(
        {
            "idempotency_key": "order-1",
            "concurrency_key": "user-7",
            "machine": "large-1x",
            "max_attempts": 5,
            "max_duration": 60,
            "ttl": 3600,
            "delay": 30,
            "tags": ["a", "b"],
            "metadata": {"user": 7},
            "priority": 10,
            "is_test": True,
        }
    )
    assert wire == {
        "idempotencyKey": "order-1",
        "concurrencyKey": "user-7",
        "machine": "large-1x",
        "maxAttempts": 5,
        "maxDuration": 60,
        "ttl": 3600,
        "delay": 30,
        "tags": ["a", "b"],
        "metadata": {"user": 7},
        "priority": 10,
        "isTest": True,
    }
    assert options_to_wire({"machine": None, "tags": None}) == {}


def test_durations_become_whole_seconds_rounded_up() -> None:
    wire = options_to_wire(
        {"ttl": timedelta(minutes=2), "max_duration": 0.5, "delay": timedelta(seconds=1.2)}
    )
    assert wire == {"ttl": 120, "maxDuration": 1, "delay": 2}
    with pytest.raises(TypeError, match="'ttl' must be seconds or a timedelta"):
        options_to_wire({"ttl": "1h"})
    with pytest.raises(TypeError, match="'delay'"):
        options_to_wire({"delay": True})


def test_a_delay_until_a_time_is_sent_in_utc() -> None:
    berlin = timezone(timedelta(hours=2))
    wire = options_to_wire({"delay": datetime(2024, 5, 1, 14, 0, tzinfo=berlin)})
    assert wire == {"delay": "2024-05-01T12:00:00Z"}
    naive = datetime(2024, 5, 1, 14, 0)
    assert options_to_wire({"delay": naive})["delay"] == (
        naive.astimezone().astimezone(UTC).isoformat().replace("+00:00", "Z")
    )


def test_one_tag_may_be_a_string() -> None:
    assert options_to_wire({"tags": "vip"}) == {"tags": ["vip"]}
    assert options_to_wire({"tags": ("a", "b")}) == {"tags": ["a", "b"]}


def test_unknown_options_are_refused_with_the_valid_names() -> None:
    with pytest.raises(TypeError, match=r"'colour'.*valid options are: delay, ttl, idempotency"):
        options_to_wire({"colour": "red"})
    with pytest.raises(TypeError, match="'idempotencyKey'"):
        options_to_wire({"idempotencyKey": "k"})


class Order(BaseModel):
    id: int
    placed: datetime


@dataclass
class Point:
    x: int
    y: int


def test_payloads_are_json_with_pydantic_models_dumped() -> None:
    placed = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    body = trigger_body(Order(id=7, placed=placed), {})
    assert body == {"payload": {"id": 7, "placed": "2024-05-01T12:00:00Z"}}
    assert trigger_body({"orders": [Order(id=1, placed=placed)]}, {"priority": 1}) == {
        "payload": {"orders": [{"id": 1, "placed": "2024-05-01T12:00:00Z"}]},
        "options": {"priority": 1},
    }
    assert trigger_body(Point(1, 2), {})["payload"] == {"x": 1, "y": 2}
    assert trigger_body(None, {}) == {"payload": None}
    with pytest.raises(TypeError, match="payload cannot be sent as JSON"):
        trigger_body(object(), {})


def test_batch_items_are_payloads_or_payload_and_options() -> None:
    assert as_batch_item({"name": "Ada"}) == BatchItem(payload={"name": "Ada"})
    assert as_batch_item({"payload": 1}) == BatchItem(payload=1)
    assert as_batch_item({"payload": 1, "options": {"tags": "x"}}) == BatchItem(
        payload=1, options={"tags": "x"}
    )
    # Other keys beside them: the mapping is a payload.
    assert as_batch_item({"payload": 1, "user": 2}) == BatchItem(payload={"payload": 1, "user": 2})
    wrapped = BatchItem(payload={"payload": 1})
    assert as_batch_item(wrapped) is wrapped


def test_batch_body_names_the_task_in_each_item_in_order() -> None:
    body = batch_body(
        "hello-world",
        [
            {"name": "a"},
            {"payload": {"name": "b"}, "options": {"idempotency_key": "k"}},
            BatchItem({"name": "c"}, {"max_attempts": 1}),
        ],
    )
    assert body == {
        "items": [
            {"task": "hello-world", "payload": {"name": "a"}},
            {"task": "hello-world", "payload": {"name": "b"}, "options": {"idempotencyKey": "k"}},
            {"task": "hello-world", "payload": {"name": "c"}, "options": {"maxAttempts": 1}},
        ]
    }


def test_batch_body_names_the_bad_item_and_caps_the_size() -> None:
    with pytest.raises(TypeError, match="batch item 2: the options of a batch item must be"):
        batch_body("t", [1, 2, {"payload": 3, "options": ["ttl"]}])
    with pytest.raises(TypeError, match="batch item 1: unknown trigger option"):
        batch_body("t", [1, {"payload": 2, "options": {"bogus": 1}}])
    with pytest.raises(ValueError, match="at most 1000 items; split it"):
        batch_body("t", range(1001))
    assert len(batch_body("t", range(1000))["items"]) == 1000


def test_run_handle_from_the_trigger_answer() -> None:
    assert RunHandle.from_wire({"id": "run-1", "isCached": True}, "t") == RunHandle(
        "run-1", "t", is_cached=True
    )


def view(status: str, **fields: object) -> dict[str, object]:
    return {"id": "run-1", "taskId": "hello-world", "status": status, **fields}


def test_a_completed_run_unwraps_to_its_output() -> None:
    result = RunResult.from_view(view("Completed", output={"message": "hi"}, error=None))
    assert result.ok
    assert result.status is RunPhase.COMPLETED
    assert result.unwrap() == {"message": "hi"}
    assert result.error is None


def test_a_failed_run_unwraps_to_an_error_carrying_its_error() -> None:
    error = {"type": "ValueError", "message": "boom", "stack": "Traceback …"}
    result = RunResult.from_view(view("Failed", output=None, error=error))
    assert not result.ok
    assert result.error == RunError(type="ValueError", message="boom", stack="Traceback …")
    with pytest.raises(RunFailedError, match="run 'run-1' ended as Failed: ValueError: boom") as e:
        result.unwrap()
    assert e.value.run_id == "run-1"
    assert e.value.status is RunPhase.FAILED
    assert e.value.error == result.error


def test_a_run_that_ended_without_an_error_still_does_not_unwrap() -> None:
    result = RunResult.from_view(view("Canceled"))
    with pytest.raises(RunFailedError, match=r"ended as Canceled$"):
        result.unwrap()


def test_final_statuses() -> None:
    for status in ("Completed", "Failed", "Crashed", "Canceled", "Expired", "TimedOut"):
        assert is_finished(view(status))
    assert is_finished(view("SystemFailure"))
    for status in ("Pending", "Delayed", "Queued", "Executing", "WaitingToRetry"):
        assert not is_finished(view(status))


def test_config_from_the_environment_prefers_an_api_key() -> None:
    env = {
        "PODTASK_API_URL": "http://api:8080/",
        "PODTASK_API_KEY": "pt_key",
        "PODTASK_ATTEMPT_TOKEN": "claims.signature",
    }
    config = ClientConfig.resolve(env)
    assert config.api_url == "http://api:8080"
    assert config.headers == {"Authorization": "Bearer pt_key"}
    assert config.url("/api/v1/runs/x") == "http://api:8080/api/v1/runs/x"
    assert "pt_key" not in repr(config)


def test_inside_a_task_the_attempt_token_is_the_credential() -> None:
    env = {"PODTASK_API_URL": "http://api", "PODTASK_ATTEMPT_TOKEN": "claims.signature"}
    config = ClientConfig.resolve(env)
    assert config.api_key is None
    assert config.headers == {"Authorization": "Bearer claims.signature"}


def test_given_settings_win_over_the_environment() -> None:
    env = {"PODTASK_API_URL": "http://env", "PODTASK_API_KEY": "env-key"}
    config = ClientConfig.resolve(env, api_url="http://given", api_key="given-key")
    assert (config.api_url, config.api_key) == ("http://given", "given-key")
    given_token = ClientConfig.resolve(env, attempt_token="t.s")
    assert (given_token.api_key, given_token.attempt_token) == (None, "t.s")
    token_only = ClientConfig.resolve({}, api_url="http://x", attempt_token="t.s")
    assert token_only.headers == {"Authorization": "Bearer t.s"}
    assert ClientConfig.resolve({}, api_url="http://x").headers == {}


def test_no_api_address_says_how_to_configure_one() -> None:
    with pytest.raises(ClientNotConfiguredError, match=r"PODTASK_API_URL.*configure"):
        ClientConfig.resolve({"PODTASK_API_KEY": "k"})


def test_api_errors_carry_status_code_and_message() -> None:
    error = api_error(
        404,
        {"error": {"code": "task_not_found", "message": "no task 'x'", "details": {"a": 1}}},
        "",
    )
    assert isinstance(error, PodtaskApiError)
    assert (error.status, error.code, error.message, error.details) == (
        404,
        "task_not_found",
        "no task 'x'",
        {"a": 1},
    )
    assert str(error) == "no task 'x' (HTTP 404, task_not_found)"
    assert not error.is_transient
    proxy = api_error(502, None, "<html>Bad Gateway</html>")
    assert (proxy.code, proxy.message, proxy.is_transient) == (
        "http_error",
        "<html>Bad Gateway</html>",
        True,
    )


def test_polling_backs_off_gently_to_a_cap() -> None:
    delays = [poll_delay(n) for n in range(10)]
    assert delays[0] == pytest.approx(0.2)
    assert delays == sorted(delays)
    assert delays[-1] == MAX_POLL_SECONDS
    assert sum(delays[:5]) < 3


def test_the_keyword_options_are_the_wire_models_fields() -> None:
    """The Python keywords (typed for `Unpack`) and the API's model name the same options."""
    from podtask._authoring.trigger_options import TriggerOptions
    from podtask._contract.trigger_request import WireTriggerOptions, option_wire_names

    assert set(TriggerOptions.__annotations__) == set(WireTriggerOptions.model_fields)
    assert option_wire_names()["idempotency_key_ttl"] == "idempotencyKeyTTL"


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("500ms", 0.5),
        ("90", 90),
        ("1.5m", 90),
        ("2h", 7200),
        ("2w", 14 * 86400),
        (timedelta(minutes=2), 120),
        (3, 3),
    ],
)
def test_one_duration_reading_for_every_caller(given: object, seconds: float) -> None:
    from podtask._contract.durations import duration_seconds

    assert duration_seconds(given) == seconds


@pytest.mark.parametrize("bad", ["", "-3", "5 minutes", True, None])
def test_what_is_not_a_duration(bad: object) -> None:
    from podtask._contract.durations import DurationError, duration_seconds

    with pytest.raises(DurationError):
        duration_seconds(bad)


def test_run_filters_are_checked_by_name() -> None:
    from podtask.client import run_list_params

    with pytest.raises(TypeError, match=r"'owner'.*valid filters are: status, task, tag"):
        run_list_params(owner="me")  # type: ignore[call-arg]
    assert ("isTest", "true") in run_list_params(is_test=True)
    assert ("isTest", "false") in run_list_params(is_test=False)
    assert not any(name == "isTest" for name, _ in run_list_params(is_test=None))


@pytest.mark.component  # a fresh interpreter: nothing imported yet
def test_declaring_a_task_does_not_import_the_http_client() -> None:
    import subprocess
    import sys

    script = (
        "import sys, podtask\n"
        "@podtask.task(id='quiet')\n"
        "def quiet(payload, ctx): return None\n"
        "assert 'httpx' not in sys.modules, 'httpx imported'\n"
        "from podtask.client import PodtaskClient\n"
        "PodtaskClient(api_url='http://x')\n"
        "assert 'httpx' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
