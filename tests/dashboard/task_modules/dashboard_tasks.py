"""Tasks for the dashboard's browser tests (tests/dashboard): `podtask dev` registers every
module of this folder, with the examples (hello-world among them)."""

from typing import Any

from podtask import Context, task


@task(id="dashboard-hello", queue={"name": "dashboard", "concurrency_limit": 5})
def dashboard_hello(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"greeting": f"hello {payload.get('name', 'there')}"}


# Declares its schedule (DECLARATIVE, registered by `podtask dev`): the Schedules page's.
# Weekdays at 9 in Paris; the schedules the page's tests create over the API tick faster.
@task(id="dashboard-scheduled", schedule={"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"})
def dashboard_scheduled(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"tick": payload.get("timestamp"), "schedule": payload.get("scheduleId")}
