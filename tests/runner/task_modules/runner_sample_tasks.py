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


@task(id="runner-bad-output")
def bad_output(payload: Any, ctx: Context) -> Any:
    """Returns the output the payload names: each is valid for Python, not for a TaskRun."""
    nested: Any = 1
    for _ in range(100):
        nested = [nested]
    outputs: dict[str, Any] = {
        # 100 Ki characters, 600 KiB as Kubernetes stores them (each `<` is \u003c).
        "escaped": "<" * (100 * 1024),
        "surrogate": {"text": "\ud800"},
        "deep": {"a": nested},
        "huge-int": {"n": 2**64},
    }
    return outputs[payload]


@task(id="runner-surrogate-error")
def surrogate_error(payload: Any, ctx: Context) -> None:
    # Bytes a task decoded with surrogateescape end up in its error message.
    raise ValueError(b"bad \xff byte".decode("utf-8", "surrogateescape"))
