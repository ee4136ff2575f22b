"""Tasks for the operator's queue, retry and lifecycle tests."""

import time
from typing import Any

from podtask import Context, queue, task

limited = queue("limited", concurrency_limit=3)


@task(id="limited", queue=limited, retry={"max_attempts": 1})
def limited_task(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    time.sleep(float(payload.get("seconds", 0)))
    return {"i": payload.get("i")}


@task(id="keyed", queue={"name": "keyed", "concurrency_limit": 2}, retry={"max_attempts": 1})
def keyed(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    time.sleep(float(payload.get("seconds", 0.5)))
    return {"key": ctx.concurrency_key}


@task(
    id="adjustable", queue={"name": "adjustable", "concurrency_limit": 3}, retry={"max_attempts": 1}
)
def adjustable(payload: dict[str, Any], ctx: Context) -> None:
    time.sleep(float(payload.get("seconds", 1)))


@task(id="flow", queue={"name": "flow", "concurrency_limit": 10}, retry={"max_attempts": 2})
def flow(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    time.sleep(float(payload.get("seconds", 0)))
    return {"i": payload.get("i"), "attempt": ctx.attempt}


@task(
    id="jittered-retry",
    retry={"max_attempts": 3, "min_timeout_ms": 400, "factor": 2, "randomize": True},
)
def jittered_retry(payload: dict[str, Any], ctx: Context) -> dict[str, int]:
    if ctx.attempt < 3:
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    return {"attempt": ctx.attempt}


@task(id="gated", queue={"name": "gated", "concurrency_limit": 1}, retry={"max_attempts": 1})
def gated(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    time.sleep(float(payload.get("seconds", 0)))
    return {"echo": payload.get("echo")}


@task(id="sleepy", max_duration=2, retry={"max_attempts": 1})
def sleepy(payload: dict[str, Any], ctx: Context) -> None:
    time.sleep(float(payload.get("seconds", 30)))


# The longest queue name podtask takes (63 characters: a label value as it is).
@task(
    id="long-queue",
    queue={"name": "long." + "q" * 53 + ".name", "concurrency_limit": 1},
    retry={"max_attempts": 1},
)
def long_queue(payload: dict[str, Any], ctx: Context) -> None:
    time.sleep(float(payload.get("seconds", 1)))
