"""Tasks whose runs the realtime tests follow (`subscribe_to_run`, `subscribe_to_runs`)."""

import time
from typing import Any

from podtask import Context, task

# A queue of their own, which the tests pause so that a run waits until they follow it.
REALTIME = {"name": "realtime", "concurrency_limit": 4}


@task(
    id="retried-once",
    queue=REALTIME,
    retry={"max_attempts": 2, "min_timeout_ms": 500, "factor": 1, "randomize": False},
)
def retried_once(payload: dict[str, Any], ctx: Context) -> dict[str, int]:
    time.sleep(float((payload or {}).get("seconds", 0.2)))
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt fails on purpose")
    return {"attempt": ctx.attempt}


@task(id="realtime-quick", queue=REALTIME, retry={"max_attempts": 1})
def quick(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    time.sleep(float((payload or {}).get("seconds", 0.2)))
    return {"echo": (payload or {}).get("echo")}
