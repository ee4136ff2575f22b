"""Tasks whose runs the metrics tests count: one that completes, one that fails every attempt."""

from typing import Any

from podtask import Context, task


@task(id="metered-ok", queue={"name": "metered", "concurrency_limit": 2})
def metered_ok(payload: Any, ctx: Context) -> dict[str, Any]:
    return {"echo": payload}


@task(
    id="metered-fails",
    queue={"name": "metered", "concurrency_limit": 2},
    retry={"max_attempts": 2, "min_timeout_ms": 100, "max_timeout_ms": 200},
)
def metered_fails(payload: Any, ctx: Context) -> None:
    raise ValueError(f"attempt {ctx.attempt} fails on purpose")
