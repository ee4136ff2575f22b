"""one-at-a-time: tasks that share a queue with a concurrency limit of 1.

Runs of both tasks wait for each other: at most one of them executes at a time.
"""

import time
from typing import Any

from podtask import Context, queue, task

one_at_a_time = queue("one-at-a-time", concurrency_limit=1)


@task(id="one-at-a-time", queue=one_at_a_time)
def process_in_order(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    time.sleep(float(payload.get("seconds", 0.2)))
    return {"item": payload.get("item"), "queue": ctx.queue}


@task(id="one-at-a-time-report", queue=one_at_a_time)
def report_in_order(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"reported": payload.get("item"), "queue": ctx.queue}
