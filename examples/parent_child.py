"""parent-task and child-task: a task that triggers other tasks and waits for them.

Inside a task, triggering needs no API key: the runner's token for this attempt
authorises it, and every child run records this run as its parent.
"""

from typing import Any

from podtask import Context, task


@task(id="child-task")
def child_task(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"doubled": payload["n"] * 2, "parentRunId": ctx.parent_run_id}


@task(id="parent-task")
def parent_task(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    one = child_task.trigger_and_wait({"n": payload.get("n", 21)})
    batch = child_task.batch_trigger_and_wait([{"n": i} for i in range(3)])
    return {
        "child": one.unwrap(),
        "childRunId": one.id,
        "batch": [result.unwrap()["doubled"] for result in batch],
    }
