"""Hooks, payload models and SIGTERM in real runner processes against the real API."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from runner_fixtures import TASK_MODULES, LiveApi

HOOK_TASKS = str(TASK_MODULES / "runner_hook_tasks.py")


def events(stdout: str) -> list[str]:
    return [line.removeprefix("event ") for line in stdout.splitlines() if line.startswith("event")]


def run_hook_task(
    live_api: LiveApi, task_id: str, payload: Any, *, attempt: int = 1
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
    run = live_api.start_run(task_id, payload, module=HOOK_TASKS, attempt=attempt)
    done = live_api.run_runner(run, attempt=attempt)
    return done, live_api.report(run), run


INIT = {"db": "connected", "global": "global-init"}
SUCCESS_ORDER = [
    "global on_start",
    "task on_start attempt=1 init=None",
    "global init",
    "task init global_init='global-init'",
    "global middleware before",
    "task middleware before run=RUN",
    "task run",
    "task middleware after",
    "global middleware after",
    "global on_success",
    f"task on_success output={{'wrapped': {{'init': {INIT!r}}}}}",
    "global on_complete ok=True",
    "task on_complete ok=True error=None",
    f"task cleanup init={INIT!r}",
    "global cleanup",
]


@pytest.mark.parametrize("task_id", ["hooks-sync", "hooks-async"])
def test_every_hook_runs_in_order_around_a_successful_run(live_api: LiveApi, task_id: str) -> None:
    run = live_api.start_run(task_id, {}, module=HOOK_TASKS)
    done = live_api.run_runner(run)
    assert done.returncode == 0, done.stderr
    expected = [e.replace("run=RUN", f"run={run}") for e in SUCCESS_ORDER]
    assert events(done.stdout) == expected
    report = live_api.report(run)
    # The middleware's return value is the output, and run saw what init returned.
    assert report["ok"] is True
    assert report["output"] == {"wrapped": {"init": INIT}}


@pytest.mark.parametrize("task_id", ["hooks-sync", "hooks-async"])
def test_a_failed_run_gets_on_error_then_on_complete_then_cleanup(
    live_api: LiveApi, task_id: str
) -> None:
    done, report, run = run_hook_task(live_api, task_id, {"fail": True}, attempt=2)
    assert done.returncode == 1
    assert report["error"]["type"] == "RuntimeError"
    assert events(done.stdout) == [
        # Attempt 2: no on_start.
        "global init",
        "task init global_init='global-init'",
        "global middleware before",
        f"task middleware before run={run}",
        "task run",
        "global middleware after",
        "global on_error RuntimeError",
        "task on_error RuntimeError",
        "global on_complete ok=False",
        "task on_complete ok=False error=RuntimeError",
        f"task cleanup init={INIT!r}",
        "global cleanup",
    ]


def test_abort_reaches_on_error_and_keeps_its_type(live_api: LiveApi) -> None:
    done, report, _ = run_hook_task(live_api, "hooks-sync", {"abort": True})
    assert done.returncode == 1
    assert report["error"]["type"] == "AbortTaskRunError"
    assert "task on_error AbortTaskRunError" in events(done.stdout)


def test_an_invalid_payload_fails_before_run_naming_each_field(live_api: LiveApi) -> None:
    done, report, _ = run_hook_task(
        live_api, "hooks-payload-model", {"email": "not-an-address", "age": "old"}
    )
    assert done.returncode == 1
    error = report["error"]
    assert error["type"] == "PayloadValidationError"
    assert "does not match Signup" in error["message"]
    assert "email: String should match pattern" in error["message"]
    assert "age: Input should be a valid integer" in error["message"]
    assert "not-an-address" not in error["message"]  # values stay out of the report
    assert events(done.stdout) == [
        "global on_error PayloadValidationError",
        "task on_error PayloadValidationError",
        "global on_complete ok=False",
        "task cleanup init=None",
        "global cleanup",
    ]


def test_a_valid_payload_reaches_run_as_the_model(live_api: LiveApi) -> None:
    done, report, _ = run_hook_task(
        live_api, "hooks-payload-model", {"email": "a@b.c", "age": "42"}
    )
    assert done.returncode == 0, done.stderr
    assert report["output"] == {"email": "a@b.c", "age": 42, "plan": "free"}
    assert "task run payload=Signup" in events(done.stdout)


def test_a_raising_cleanup_is_logged_and_changes_nothing(live_api: LiveApi) -> None:
    done, report, _ = run_hook_task(live_api, "hooks-broken-cleanup", None)
    assert done.returncode == 0, done.stderr
    assert report["ok"] is True and report["output"] == "fine"
    assert "the cleanup hook broken_cleanup of task 'hooks-broken-cleanup' raised" in done.stderr
    assert "OSError: the temp dir is gone" in done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    # The global cleanup still ran after the task's own failed.
    assert events(done.stdout)[-2:] == ["task cleanup raising", "global cleanup"]


def test_a_raising_on_success_fails_the_attempt(live_api: LiveApi) -> None:
    done, report, _ = run_hook_task(live_api, "hooks-broken-on-success", None)
    assert done.returncode == 1
    assert report["error"]["type"] == "ValueError"
    assert report["error"]["message"] == "could not notify"
    assert "task on_error ValueError" in events(done.stdout)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the runner ended before the task started"
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("task_id", ["hooks-sigterm-sync", "hooks-sigterm-async"])
def test_sigterm_during_run_cleans_up_reports_and_exits_143(
    live_api: LiveApi, tmp_path: Path, task_id: str
) -> None:
    started = tmp_path / "started"
    cleaned = tmp_path / "cleaned"
    payload = {"started_marker": str(started), "cleanup_marker": str(cleaned)}
    run = live_api.start_run(task_id, payload, module=HOOK_TASKS)
    with subprocess.Popen(
        [sys.executable, "-m", "podtask_runner"],
        env=live_api.runner_env(run),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        wait_for(started, proc)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 143, stderr
    assert cleaned.read_text() == "cleaned up attempt 1"
    assert "task run was never stopped" not in stdout
    assert events(stdout)[-6:] == [
        "global on_error TaskTerminatedError",
        "task on_error TaskTerminatedError",
        "global on_complete ok=False",
        "task on_complete ok=False error=TaskTerminatedError",
        "task cleanup init='global-init'",
        "global cleanup",
    ]
    report = live_api.report(run)
    assert report["ok"] is False
    assert report["error"]["type"] == "TaskTerminatedError"
    assert "SIGTERM" in report["error"]["message"]


def test_sigterm_during_the_import_ends_the_runner_at_once(
    live_api: LiveApi, tmp_path: Path
) -> None:
    importing = tmp_path / "importing"
    module = str(TASK_MODULES / "runner_slow_import_tasks.py")
    run = live_api.start_run("runner-slow-import", module=module)
    with subprocess.Popen(
        [sys.executable, "-m", "podtask_runner"],
        env=live_api.runner_env(run, RUNNER_TEST_FLAG=str(importing)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        wait_for(importing, proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 143, stderr
    error = live_api.report(run)["error"]
    assert error["type"] == "TaskTerminatedError"  # not an import error: nothing to blame
