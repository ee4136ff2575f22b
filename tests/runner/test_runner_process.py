"""The runner as a real process against the real API's runner endpoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from runner_fixtures import TASK_MODULES, LiveApi

# Not unit (tests/tiers.py): runs the runner as a process.
pytestmark = pytest.mark.component


def test_sync_task_completes_with_its_output(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-echo-sync", {"name": "Ada", "n": None}, tags=["t1"])
    done = live_api.run_runner(run)
    assert done.returncode == 0, done.stderr
    report = live_api.report(run)
    assert report["ok"] is True
    assert report["attempt"] == 1
    assert report["error"] is None
    assert report["output"] == {
        "payload": {"name": "Ada", "n": None},
        "runId": run,
        "attempt": 1,
        "machine": "small-2x",
        "memoryGb": 1.0,
        "tags": ["t1"],
        "startedAtHasZone": True,
    }
    assert f"attempt 1 of run {run} (task runner-echo-sync) starting" in done.stderr
    assert "completed in" in done.stderr
    assert "Ada" not in done.stderr + done.stdout  # no payload in the runner's lines


def test_async_task_completes_with_its_output(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-echo-async", [1, 2, 3])
    done = live_api.run_runner(run)
    assert done.returncode == 0, done.stderr
    output = live_api.report(run)["output"]
    assert output == {"payload": [1, 2, 3], "async": True, "taskId": "runner-echo-async"}


def test_nulls_inside_the_output_survive(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-nulls")
    assert live_api.run_runner(run).returncode == 0
    assert live_api.report(run)["output"] == {"kept": None, "list": [None, 1], "tuple": [1, 2]}


def test_a_raising_task_reports_type_message_and_stack(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-raises", {"amount": 42})
    done = live_api.run_runner(run)
    assert done.returncode == 1
    report = live_api.report(run)
    assert report["ok"] is False
    # kube-apiserver drops the null (the schema's `output` is not nullable): no output is null.
    assert report.get("output") is None
    error = report["error"]
    assert error["type"] == "PaymentDeclinedError"
    assert error["message"] == "card declined for 42"
    assert "Traceback (most recent call last)" in error["stack"]
    assert "in _charge" in error["stack"]
    assert "failed after" in done.stderr and "PaymentDeclinedError" in done.stderr


def test_abort_keeps_its_type_for_the_operator(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-aborts")
    assert live_api.run_runner(run).returncode == 1
    assert live_api.report(run)["error"]["type"] == "AbortTaskRunError"


def test_non_json_output_is_a_clear_error(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-not-json")
    assert live_api.run_runner(run).returncode == 1
    error = live_api.report(run)["error"]
    assert error["type"] == "OutputNotSerializableError"
    assert "the output of task 'runner-not-json' is not JSON" in error["message"]
    assert "output.when: a value of type object is not JSON" in error["message"]


def test_too_large_output_is_a_clear_error(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-too-large")
    assert live_api.run_runner(run).returncode == 1
    error = live_api.report(run)["error"]
    assert error["type"] == "OutputTooLargeError"
    assert str(600 * 1024 + 2) in error["message"]
    assert "524288" in error["message"]


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ("escaped", "is 614402 bytes of JSON, over the limit of 524288 bytes"),
        ("surrogate", "output.text: the string holds a lone surrogate (U+D800)"),
        ("deep", "nest deeper than 64 levels"),
        ("huge-int", "output.n: the integer has 20 digits"),
    ],
)
def test_an_output_a_run_cannot_hold_fails_the_attempt_clearly(
    live_api: LiveApi, payload: str, says: str
) -> None:
    run = live_api.start_run("runner-bad-output", payload)
    assert live_api.run_runner(run).returncode == 1
    error = live_api.report(run)["error"]
    assert error["type"] in ("OutputTooLargeError", "OutputNotSerializableError")
    assert says in error["message"]


def test_an_error_message_that_is_not_unicode_is_reported_mended(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-surrogate-error")
    assert live_api.run_runner(run).returncode == 1
    error = live_api.report(run)["error"]
    assert (error["type"], error["message"]) == ("ValueError", "bad \ufffd byte")


def test_module_that_fails_to_import_names_module_and_cause(live_api: LiveApi) -> None:
    module = str(TASK_MODULES / "runner_broken_tasks.py")
    run = live_api.start_run("runner-broken", module=module)
    assert live_api.run_runner(run).returncode == 1
    error = live_api.report(run)["error"]
    assert error["type"] == "TaskModuleImportError"
    assert "runner_broken_tasks.py" in error["message"]
    assert "ModuleNotFoundError" in error["message"]
    assert "podtask_no_such_dependency" in error["message"]


def test_unknown_task_id_is_reported(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-nobody")
    assert live_api.run_runner(run).returncode == 1
    error = live_api.report(run)["error"]
    assert error["type"] == "TaskNotFoundError"
    assert "'runner-nobody'" in error["message"]
    assert "runner-echo-sync" in error["message"]


def test_max_duration_interrupts_a_sync_task(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-slow", max_duration=1)
    assert live_api.run_runner(run).returncode == 1
    error = live_api.report(run)["error"]
    assert error["type"] == "MaxDurationExceededError"
    assert "maxDuration of 1 seconds" in error["message"]


def test_max_duration_interrupts_an_async_task(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-slow-async", max_duration=1)
    assert live_api.run_runner(run).returncode == 1
    assert live_api.report(run)["error"]["type"] == "MaxDurationExceededError"


def _printing_runner(live_api: LiveApi, run: str, flag: Path) -> subprocess.Popen[str]:
    """The runner of a `runner-prints` run, which waits for `flag` after its first line."""
    return subprocess.Popen(
        [sys.executable, "-m", "podtask_runner"],
        env=live_api.runner_env(run, RUNNER_TEST_FLAG=str(flag)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_prints_reach_stdout_line_by_line(live_api: LiveApi, tmp_path: Path) -> None:
    run = live_api.start_run("runner-prints")
    flag = tmp_path / "first-line-seen"
    with _printing_runner(live_api, run, flag) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "first line\n"
        flag.touch()
        rest = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
    assert rest == "second line\n"
    assert live_api.report(run)["output"] == "done"


def test_a_report_that_meets_a_finished_run_ends_quietly(live_api: LiveApi, tmp_path: Path) -> None:
    run = live_api.start_run("runner-prints")
    flag = tmp_path / "first-line-seen"
    with _printing_runner(live_api, run, flag) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == "first line\n"
        # The run ends (the operator timed it out) before the task's report arrives.
        live_api.namespace.set_run_status(run, {"phase": "TimedOut", "attempt": 1})
        flag.touch()
        stderr = proc.stderr.read()
        assert proc.wait(timeout=30) == 0
    assert (
        f"attempt 1 of run {run} has ended (the run finished as TimedOut); nothing to report"
        in stderr
    )
    assert "could not" not in stderr and "HTTP" not in stderr
    assert "report" not in live_api.status(run)


def test_an_attempt_runs_before_the_operator_records_it(live_api: LiveApi) -> None:
    # The operator creates attempt 2's pod, then records attempt 2; this runner is faster.
    run = live_api.start_run("runner-echo-sync", {"n": 2}, attempt=2, recorded=False)
    assert live_api.status(run)["attempt"] == 1
    done = live_api.run_runner(run, attempt=2)
    assert done.returncode == 0, done.stderr
    report = live_api.report(run)
    assert report["attempt"] == 2 and report["ok"] is True
    assert report["output"]["attempt"] == 2
    assert report["output"]["machine"] == "small-2x"
    assert live_api.status(run)["attempt"] == 1  # recording the attempt is the operator's job


def test_a_first_attempt_runs_before_the_run_has_any_status(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-echo-sync", [None], recorded=False)
    assert live_api.status(run) == {}
    done = live_api.run_runner(run)
    assert done.returncode == 0, done.stderr
    assert live_api.report(run)["output"]["payload"] == [None]


def test_a_superseded_attempt_exits_2_without_running(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-echo-sync", attempt=2)
    done = live_api.run_runner(run, attempt=1)
    assert done.returncode == 2
    # Not an error of the runner's: one plain line says there is nothing to do.
    assert (
        f"attempt 1 of run {run} has ended (the run is on attempt 2) before it started; "
        "nothing to run"
    ) in done.stderr
    assert "could not" not in done.stderr
    assert "report" not in live_api.status(run)


def test_a_token_for_another_run_exits_2(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-echo-sync")
    other = live_api.start_run("runner-echo-sync")
    env = live_api.runner_env(other)
    env["PODTASK_RUN_ID"] = run
    done = subprocess.run(
        [sys.executable, "-m", "podtask_runner"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "HTTP 403" in done.stderr


def test_an_unreachable_api_exits_2(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-echo-sync")
    # Three tries, not the default minute of patience with a restarting API.
    env = live_api.runner_env(
        run, PODTASK_API_URL="http://127.0.0.1:9", PODTASK_API_CALL_ATTEMPTS="3"
    )
    done = subprocess.run(
        [sys.executable, "-m", "podtask_runner"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "could not fetch attempt 1" in done.stderr
    assert "ConnectionRefusedError" in done.stderr


def test_missing_environment_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "podtask_runner"],
        env={"PATH": "/usr/bin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "PODTASK_API_URL" in done.stderr
