"""What a task pod imports before its task runs: only what the run needs by then (issue 16,
P6; bench/runner_startup.py measures the time). Each check is a fresh interpreter, since
`sys.modules` of the test process holds everything the suite ever imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from runner_fixtures import TASK_MODULES, LiveApi

# Not unit (tests/tiers.py): starts interpreters and the runner as processes.
pytestmark = pytest.mark.component

STARTUP_TASKS = str(TASK_MODULES / "runner_startup_tasks.py")
REPO = Path(__file__).resolve().parents[2]

# Heavy, and needed by no run before its task starts: the HTTP client of users (and its
# transports), the SDK's API client, asyncio (only an async task needs it, and imports it
# itself), the cron parser (only a schedule needs it), the trigger's wire models, argparse
# (a pod's runner has no arguments).
NOT_BEFORE_THE_TASK = (
    "httpx",
    "httpcore",
    "asyncio",
    "croniter",
    "argparse",
    "podtask.client",
    "podtask._client.api_calls",
    "podtask._client.attempt_waits",
    "podtask._authoring.trigger_options",
    "podtask._contract.trigger_request",
)


# And in a pod, whose task module's declarations were registered already: pydantic, and the
# CRD's models built with it (the runner builds only a failure's report with them).
NOT_IN_A_POD_BEFORE_THE_TASK = (
    *NOT_BEFORE_THE_TASK,
    "pydantic",
    "pydantic_core",
    "podtask._contract.resources",
)


def heavy(modules: list[str], listed: tuple[str, ...] = NOT_BEFORE_THE_TASK) -> list[str]:
    return [
        name
        for name in modules
        if any(name == heavy or name.startswith(f"{heavy}.") for heavy in listed)
    ]


def test_a_pods_runner_has_imported_nothing_heavy_when_its_task_starts(live_api: LiveApi) -> None:
    run = live_api.start_run("runner-startup-modules", module=STARTUP_TASKS)
    done = live_api.run_runner(run)
    assert done.returncode == 0, done.stderr
    report = live_api.report(run)
    assert report["ok"] is True, report
    assert heavy(report["output"], NOT_IN_A_POD_BEFORE_THE_TASK) == []
    # The check sees what it should: the runner's own modules are there.
    assert "podtask_runner.callbacks" in report["output"]


def test_a_pods_runner_imports_no_pydantic_for_a_task_that_succeeds(live_api: LiveApi) -> None:
    """Nor after the task: its report of success is sent without the wire models (the API
    checks it with them), so the report is not late by pydantic's import, about 100 ms of CPU
    a run. Python itself lists every import of the whole process (`-X importtime`)."""
    run = live_api.start_run("runner-startup-modules", module=STARTUP_TASKS)
    done = live_api.run_runner(run, PYTHONPROFILEIMPORTTIME="1")
    assert done.returncode == 0, done.stderr
    imported = [
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    assert "podtask_runner.callbacks" in imported
    assert heavy(imported, NOT_IN_A_POD_BEFORE_THE_TASK) == []
    assert live_api.report(run)["ok"] is True


def test_importing_podtask_and_declaring_a_task_imports_nothing_heavy() -> None:
    script = (
        "import json, sys\n"
        "import podtask, podtask_runner.__main__\n"
        "from podtask import task, Context\n"
        "@task(id='quiet', retry={'max_attempts': 2}, queue={'concurrency_limit': 3})\n"
        "def quiet(payload, ctx): return None\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert heavy(json.loads(done.stdout)) == []


def test_registered_declarations_are_checked_when_their_options_are_read() -> None:
    """As a pod's runner imports its task module: no pydantic for the options, which are
    checked all the same, when read; a mistake then is the same TaskDeclarationError."""
    script = (
        "import sys\n"
        "from podtask import task, TaskDeclarationError\n"
        "from podtask._authoring.tasks import declarations_registered\n"
        "with declarations_registered():\n"
        "    @task(id='fine', retry={'max_attempts': 2}, queue={'concurrency_limit': 3},\n"
        "          schedule='0 * * * *')\n"
        "    def fine(payload, ctx): return None\n"
        "    @task(id='wrong', retry={'max_attempts': 0})\n"
        "    def wrong(payload, ctx): return None\n"
        "assert 'pydantic' not in sys.modules and 'croniter' not in sys.modules\n"
        "assert fine.queue_name == 'fine' and wrong.queue_name == 'wrong'\n"
        "assert fine.retry.max_attempts == 2 and fine.queue.concurrency_limit == 3\n"
        "assert fine.schedule is not None and fine.schedule.cron == '0 * * * *'\n"
        "try:\n"
        "    wrong.retry\n"
        "except TaskDeclarationError as exc:\n"
        "    assert \"task 'wrong': invalid retry: max_attempts\" in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('an invalid retry was read')\n"
        "try:\n"
        "    task(id='eager', retry={'max_attempts': 0})\n"
        "except TaskDeclarationError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('outside, a declaration is checked as it is made')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_what_is_left_out_is_still_there_when_used() -> None:
    """The lazy names of `podtask` and `Task`'s client methods resolve when asked for."""
    script = (
        "import sys, podtask\n"
        "assert 'podtask.client' not in sys.modules\n"
        "assert callable(podtask.configure) and 'podtask.client' in sys.modules\n"
        "assert podtask.Task.trigger.__doc__ and podtask.Task.batch_trigger_and_wait_async\n"
        "assert set(podtask.__all__) <= set(dir(podtask))\n"
        "for name in podtask.__all__: getattr(podtask, name)\n"
        "assert callable(podtask.client.trigger) and podtask.errors.TaskDeclarationError\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_the_startup_benchmark_records_p6(tmp_path: Path) -> None:
    """A smoke run of bench/runner_startup.py: it measures and writes its figure (any time)."""
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "bench/runner_startup.py", "--quick"],
        env={**os.environ, "PODTASK_BENCH_RESULTS": str(results)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    entry = json.loads(results.read_text())["p6"]
    assert entry["goal"] == "< 150"
    assert len(entry["raw"]["runner_ms"]) == len(entry["raw"]["python_pass_ms"]) == 3
