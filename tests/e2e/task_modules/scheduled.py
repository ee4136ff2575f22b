"""A task that runs every minute, for the schedule tests: it returns what it was given."""

from typing import Any

from podtask import task


@task(id="every-minute", schedule="* * * * *", retry={"max_attempts": 1}, machine="micro")
def every_minute(payload: dict[str, Any]) -> dict[str, Any]:
    return payload
