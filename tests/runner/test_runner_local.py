"""`python -m podtask_runner --local`: one attempt in a real process, without API or cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from runner_fixtures import SAMPLE_TASKS, TASK_MODULES

# Not unit (tests/tiers.py): runs the runner as a process.
pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[2]


def run_local(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podtask_runner", "--local", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_prints_the_output_as_json_on_stdout() -> None:
    done = run_local(SAMPLE_TASKS, "runner-echo-sync", "--payload", '{"name": "Ada", "n": null}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "payload": {"name": "Ada", "n": None},
        "runId": "local",
        "attempt": 1,
        "machine": "small-1x",  # the task's own machine
        "memoryGb": 0.5,
        "tags": [],
        "startedAtHasZone": True,
    }
    assert "attempt 1 of run local (task runner-echo-sync) starting" in done.stderr
    assert "completed in" in done.stderr


def test_context_has_the_tasks_queue_and_machine(tmp_path: Path) -> None:
    module = tmp_path / "local_context_tasks.py"
    module.write_text(
        "from podtask import task\n"
        "@task(id='local-context', queue={'name': 'emails', 'concurrency_limit': 1},"
        " machine='medium-2x')\n"
        "def run(payload, ctx):\n"
        "    return [ctx.run_id, ctx.attempt, ctx.task_id, ctx.queue, ctx.machine.name,\n"
        "            ctx.machine.cpu, ctx.machine.memory_gb, payload]\n"
    )
    done = run_local(str(module), "local-context")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        "local",
        1,
        "local-context",
        "emails",
        "medium-2x",
        2,
        4,
        None,
    ]


def test_the_benchmark_call_works() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "podtask_runner",
            "--local",
            "bench/tasks/noop.py",
            "noop",
            "--payload",
            '{"i": 1}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    # The moments the end-to-end benchmark's latency breakdown takes from the task.
    assert output.pop("process_started") <= output.pop("imported") <= output.pop("task_started")
    assert output == {"i": 1}


def test_async_task_and_output_after_the_tasks_prints(tmp_path: Path) -> None:
    module = tmp_path / "local_print_tasks.py"
    module.write_text(
        "import asyncio\n"
        "from podtask import task\n"
        "@task(id='local-prints')\n"
        "async def run(payload, ctx):\n"
        "    print('working on', payload)\n"
        "    await asyncio.sleep(0)\n"
        "    return {'tuple': (1, None), 'text': 'caf\\u00e9'}\n"
    )
    done = run_local(str(module), "local-prints", "--payload", "7")
    assert done.returncode == 0, done.stderr
    printed, output = done.stdout.splitlines()
    assert printed == "working on 7"
    assert json.loads(output) == {"tuple": [1, None], "text": "café"}


def test_a_raising_task_exits_1_with_type_message_and_stack() -> None:
    done = run_local(SAMPLE_TASKS, "runner-raises", "--payload", '{"amount": 42}')
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback (most recent call last)" in done.stderr
    assert "in _charge" in done.stderr
    assert "PaymentDeclinedError: card declined for 42" in done.stderr


def test_output_is_checked_as_in_a_real_attempt() -> None:
    not_json = run_local(SAMPLE_TASKS, "runner-not-json")
    assert not_json.returncode == 1 and not_json.stdout == ""
    assert "OutputNotSerializableError: the output of task 'runner-not-json' is not JSON" in (
        not_json.stderr
    )
    too_large = run_local(SAMPLE_TASKS, "runner-too-large")
    assert too_large.returncode == 1 and too_large.stdout == ""
    assert "OutputTooLargeError" in too_large.stderr and "524288" in too_large.stderr


def test_max_duration_applies() -> None:
    done = run_local(SAMPLE_TASKS, "runner-slow")
    assert done.returncode == 1
    assert "MaxDurationExceededError: task 'runner-slow' exceeded its maxDuration of 1" in (
        done.stderr
    )


def test_import_failure_and_unknown_task_exit_1() -> None:
    broken = run_local(str(TASK_MODULES / "runner_broken_tasks.py"), "runner-broken")
    assert broken.returncode == 1
    assert "TaskModuleImportError" in broken.stderr
    assert "podtask_no_such_dependency" in broken.stderr
    unknown = run_local(SAMPLE_TASKS, "runner-nobody")
    assert unknown.returncode == 1
    assert "TaskNotFoundError" in unknown.stderr and "runner-echo-sync" in unknown.stderr


def test_bad_arguments_exit_2() -> None:
    not_json = run_local(SAMPLE_TASKS, "runner-echo-sync", "--payload", "{nope")
    assert not_json.returncode == 2
    assert "--payload is not valid JSON" in not_json.stderr
    nan = run_local(SAMPLE_TASKS, "runner-echo-sync", "--payload", "NaN")
    assert nan.returncode == 2
    assert "NaN is not JSON" in nan.stderr
    missing_task = run_local(SAMPLE_TASKS)
    assert missing_task.returncode == 2
    without_local = subprocess.run(
        [sys.executable, "-m", "podtask_runner", "--payload", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert without_local.returncode == 2
    assert "--payload goes with --local" in without_local.stderr
