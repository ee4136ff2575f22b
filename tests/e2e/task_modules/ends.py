"""Tasks for what is left of a run after it ends: each prints, then ends one way or another.
Those that fail cannot succeed on another attempt, though they allow three."""

import time
from typing import Any

from podtask import Context, task

THREE_QUICK_TRIES = {"max_attempts": 3, "min_timeout_ms": 100, "max_timeout_ms": 200}


@task(id="says-then-waits", retry=THREE_QUICK_TRIES)
def says_then_waits(payload: dict[str, Any], ctx: Context) -> dict[str, int]:
    print(f"attempt {ctx.attempt} says hello", flush=True)
    # Only the first attempt waits: the one a test cancels, or whose pod it deletes.
    if ctx.attempt == 1:
        time.sleep(float(payload.get("seconds", 120)))
    return {"attempt": ctx.attempt}


@task(id="says-then-oversleeps", max_duration=3, retry={"max_attempts": 1})
def says_then_oversleeps(payload: Any, ctx: Context) -> None:
    print("about to oversleep", flush=True)
    time.sleep(120)


@task(id="returns-a-set-thrice", retry=THREE_QUICK_TRIES)
def returns_a_set(payload: Any, ctx: Context) -> object:
    print("returning a set", flush=True)
    return {1, 2, 3}
