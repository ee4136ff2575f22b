"""A fast task for the batch tests: many of its runs execute at once."""

from typing import Any

from podtask import Context, queue, task

wide = queue("wide", concurrency_limit=20)


@task(id="quick", queue=wide, retry={"max_attempts": 1})
def quick(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"i": payload.get("i")}


@task(id="parked", queue={"name": "parked", "concurrency_limit": 1}, retry={"max_attempts": 1})
def parked(payload: dict[str, Any], ctx: Context) -> None:
    """On a queue the tests pause: its runs are created and never started."""
