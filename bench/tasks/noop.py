"""The benchmark's task: does nothing, so what is measured is podtask's own cost."""

from typing import Any

from podtask import Context, task


@task(id="noop", retry={"max_attempts": 1})
def noop(payload: Any, ctx: Context) -> dict[str, Any]:
    return {"i": payload.get("i")}
