"""A task that runs every minute, for the schedule tests: it says which tick it ran for."""

from typing import Any

from podtask import Context, task


@task(id="every-minute", schedule="* * * * *", retry={"max_attempts": 1}, machine="micro")
def every_minute(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"tick": payload["timestamp"], "schedule": payload["scheduleId"], "tags": ctx.tags}
