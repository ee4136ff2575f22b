"""The scale benchmark's task (`bench/operator_scale.py`): a no-op on a queue of 500 at a
time, run on the simulated node, so that what is measured is the operator and the API server."""

from typing import Any

from podtask import Context, queue, task

# Issue 16's P7: 10,000 runs through a queue whose limit is 500.
QUEUE_LIMIT = 500

scale_queue = queue("bench-scale", concurrency_limit=QUEUE_LIMIT)


@task(id="bench-scale", queue=scale_queue, retry={"max_attempts": 1})
def scaled(payload: Any, ctx: Context) -> None:
    return None
