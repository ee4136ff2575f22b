"""The admission benchmark's task: a no-op on a queue with a small limit."""

from typing import Any

from podtask import Context, queue, task

admission_queue = queue("bench-admission", concurrency_limit=4)


@task(id="bench-admission", queue=admission_queue, retry={"max_attempts": 1})
def admitted(payload: Any, ctx: Context) -> None:
    return None
