"""Tasks for the dashboard's browser tests (tests/dashboard): `podtask dev` registers every
module of this folder, with the examples (hello-world among them)."""

from typing import Any

from podtask import Context, task


@task(id="dashboard-hello", queue={"name": "dashboard", "concurrency_limit": 5})
def dashboard_hello(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"greeting": f"hello {payload.get('name', 'there')}"}
