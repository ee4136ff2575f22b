"""The benchmark's task: does nothing, so what is measured is podtask's own cost."""

from typing import Any

from podtask import Context, task

# The benchmark spawns the runner directly at this same concurrency, side by side.
CONCURRENCY = 8


@task(id="noop", retry={"max_attempts": 1}, queue={"concurrency_limit": CONCURRENCY})
def noop(payload: Any, ctx: Context) -> dict[str, Any]:
    return {"i": payload.get("i")}
