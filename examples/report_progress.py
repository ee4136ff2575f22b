"""report-progress: a task that reports its progress through its run's metadata.

As Trigger.dev's `metadata.set("progress", ...)`: `podtask.metadata` changes the metadata of
the run the task runs in, and the run's view (`podtask runs get`, `GET /api/v1/runs/{id}`, the
dashboard's run page) shows it while the task runs; `progress`, a number from 0 to 1, is
drawn as a bar. `ctx.metadata` is the same object; the changes chain. The runner sends the
metadata at most once a second while it changes, and once more when the task ends.
"""

import time
from typing import Any

from podtask import Context, metadata, task


@task(id="report-progress", max_duration=300)
def report_progress(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    steps = int(payload.get("steps", 10))
    seconds = float(payload.get("seconds", 0.5))
    metadata.set("progress", 0).set("status", "starting")
    for step in range(1, steps + 1):
        time.sleep(seconds)  # a step of the real work
        metadata.set("progress", step / steps).set("status", f"step {step} of {steps}")
        ctx.metadata.append("finished", step)
    return {"steps": steps, "progress": metadata.get("progress"), "isTest": ctx.is_test}
