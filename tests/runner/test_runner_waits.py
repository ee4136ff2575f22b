"""The max-duration clock stops while the task waits (`wait.for_`, a wait on runs): the time
waited is not the task's, as Trigger.dev does not count a waiting run's time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from declared_tasks import make_task

from podtask import Context, MachineContext, client, wait
from podtask.hooks import TaskHooks
from podtask_runner.attempt import execute_attempt

CTX = Context(
    run_id="run-w",
    attempt=1,
    task_id="t",
    queue="q",
    machine=MachineContext("micro", 0.25, 0.25),
    started_at=datetime(2024, 1, 1, tzinfo=UTC),
)


@pytest.fixture(autouse=True)
def no_api(monkeypatch: pytest.MonkeyPatch) -> None:
    # Outside a pod: `wait` only sleeps, and tells the runner it waits.
    monkeypatch.delenv("PODTASK_API_URL", raising=False)
    monkeypatch.setattr(client, "_default", None)


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
def test_waiting_is_not_counted_in_max_duration(run_async: bool) -> None:
    def run(payload: Any, ctx: Context) -> str:
        wait.for_(seconds=0.6)
        return "waited"

    async def run_async_task(payload: Any, ctx: Context) -> str:
        await wait.for_async(seconds=0.6)
        return "waited"

    outcome = execute_attempt(
        make_task(run_async_task if run_async else run),
        None,
        CTX,
        global_hooks=TaskHooks(),
        max_duration_seconds=0.3,
    )
    assert outcome.ok, outcome.error


def test_the_work_around_a_wait_still_counts() -> None:
    def run(payload: Any, ctx: Context) -> None:
        wait.for_(seconds=0.3)
        time.sleep(5)  # the task's own work: past its maxDuration

    outcome = execute_attempt(
        make_task(run), None, CTX, global_hooks=TaskHooks(), max_duration_seconds=0.5
    )
    assert outcome.error is not None and outcome.error.type == "MaxDurationExceededError"
