"""hello-world: the smallest task, as in Trigger.dev's docs."""

from typing import Any

from podtask import Context, task


@task(
    id="hello-world",
    retry={"max_attempts": 3},
    queue={"concurrency_limit": 1},
    machine="small-1x",
)
def hello_world(payload: dict[str, Any], ctx: Context) -> dict[str, str]:
    print(f"Hello, {payload['name']}! (run {ctx.run_id}, attempt {ctx.attempt})")
    return {"message": f"hello {payload['name']}"}
