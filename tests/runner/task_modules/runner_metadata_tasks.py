"""Tasks that write their run's metadata, for the runner tests."""

from __future__ import annotations

import threading
from typing import Any

from podtask import Context, metadata, task


@task(id="runner-metadata")
def write_metadata(payload: Any, ctx: Context) -> dict[str, Any]:
    given = ctx.metadata.current()
    metadata.set("progress", 0).append("steps", "start")
    # A thread the task starts writes to the same run's metadata.
    thread = threading.Thread(target=lambda: metadata.set("fromThread", True))
    thread.start()
    thread.join()
    for step in range(1, 4):
        ctx.metadata.set("progress", step / 3).increment("count")
    metadata.flush()
    ctx.metadata.delete("from").append("steps", "end")  # sent once more before the report
    try:
        metadata.set("tooLarge", "x" * 300_000)
    except ValueError as exc:
        refused = str(exc)
    return {"given": given, "isTest": ctx.is_test, "refused": refused}
