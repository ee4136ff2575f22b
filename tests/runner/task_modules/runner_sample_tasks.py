"""Tasks the runner tests run in real runner processes."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from podtask import AbortTaskRunError, Context, task


@task(id="runner-echo-sync")
def echo_sync(payload: Any, ctx: Context) -> dict[str, Any]:
    return {
        "payload": payload,
        "runId": ctx.run_id,
        "attempt": ctx.attempt,
        "machine": ctx.machine.name,
        "memoryGb": ctx.machine.memory_gb,
        "tags": ctx.tags,
        "startedAtHasZone": ctx.started_at.tzinfo is not None,
    }


@task(id="runner-echo-async")
async def echo_async(payload: Any, ctx: Context) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"payload": payload, "async": True, "taskId": ctx.task_id}


class PaymentDeclinedError(Exception):
    pass


def _charge(amount: int) -> None:
    raise PaymentDeclinedError(f"card declined for {amount}")


@task(id="runner-raises")
def raises(payload: Any, ctx: Context) -> None:
    _charge(payload["amount"])


@task(id="runner-aborts")
def aborts(payload: Any, ctx: Context) -> None:
    raise AbortTaskRunError("no point retrying")


@task(id="runner-not-json")
def not_json(payload: Any, ctx: Context) -> Any:
    return {"when": object()}


@task(id="runner-too-large")
def too_large(payload: Any, ctx: Context) -> str:
    return "x" * (600 * 1024)


@task(id="runner-nulls")
def nulls(payload: Any, ctx: Context) -> Any:
    return {"kept": None, "list": [None, 1], "tuple": (1, 2)}


@task(id="runner-prints")
def prints(payload: Any, ctx: Context) -> str:
    print("first line")
    flag = Path(os.environ["RUNNER_TEST_FLAG"])
    # Waits until the test has read the first line: only possible if it was flushed.
    deadline = time.monotonic() + 10
    while not flag.exists():
        if time.monotonic() > deadline:
            print("gave up waiting")
            return "timed out"
        time.sleep(0.02)
    print("second line")
    return "done"


@task(id="runner-slow", max_duration=1)
def slow(payload: Any, ctx: Context) -> None:
    time.sleep(30)


@task(id="runner-slow-async", max_duration=1)
async def slow_async(payload: Any, ctx: Context) -> None:
    await asyncio.sleep(30)
