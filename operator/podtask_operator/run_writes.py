"""Writing a decided status onto a TaskRun: the JSON patch from the status read to the status
decided (`status_patch`), the guard that writes it only onto the version it was decided from,
and the Event that says why a run ended or waits.

A decision is written only onto the version of the run it was taken from (a resourceVersion
precondition): a report or a cancel that lands in between makes the write fail with
`RunChanged`, and the run is decided again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from podtask._contract.bounded_errors import bounded_error
from podtask._contract.resources import RunError, RunPhase, TaskRunStatus
from podtask._contract.status_patches import status_changes
from podtask_operator import metrics
from podtask_operator.cluster import ClusterApi
from podtask_operator.lifecycle import RunEnd, finished

# The runner's report belongs to the API; the operator never writes it, but for one thing:
# the output it moves to `status.output` when the run completes (`output_moved`). The run's
# metadata too (the API writes what the task sends): whatever the operator read, it leaves it.
_API_OWNED = frozenset({"report", "metadata"})


def output_moved(old: TaskRunStatus, new: TaskRunStatus) -> bool:
    """Whether `new` holds the report's output in `status.output` and the report no longer:
    the output is stored once, or a 512 KiB output would count twice in the TaskRun's budget
    (`podtask._contract.limits`) and the final write would be over what etcd stores."""
    return (
        old.report is not None
        and old.report.output is not None
        and new.report is not None
        and new.report.output is None
        and new.output is not None
    )


def status_patch(read: Any, old: TaskRunStatus, new: TaskRunStatus) -> list[dict[str, Any]]:
    """The JSON patch from `old` to `new` on a run whose status as read (before parsing into
    `old`) is `read`: the changed fields set wholesale, the cleared ones removed."""
    before, after = old.to_wire(), new.to_wire()
    changes: dict[str, Any] = {k: v for k, v in after.items() if before.get(k) != v}
    changes.update({k: None for k in before if k not in after})
    for key in _API_OWNED:
        changes.pop(key, None)
    patch = status_changes(read, changes)
    report = read.get("report") if isinstance(read, dict) else None
    if output_moved(old, new) and isinstance(report, dict) and "output" in report:
        # Only that key of the report: the rest is the API's.
        patch.append({"op": "remove", "path": "/status/report/output"})
    return patch


class RunWriter:
    """Writes what the reconciler decided about a run, and posts the Events that explain it."""

    def __init__(self, cluster: ClusterApi, clock: Callable[[], datetime]) -> None:
        self._cluster = cluster
        self._clock = clock

    async def write(
        self,
        run: dict[str, Any],
        old: TaskRunStatus,
        new: TaskRunStatus,
        *,
        guarded: bool = True,
    ) -> None:
        """Write the change from `old` to `new`; `guarded`, only onto the version of `run`
        they were decided from (else `RunChanged`)."""
        patch = status_patch(run.get("status"), old, new)
        if patch:
            version = run["metadata"].get("resourceVersion") if guarded else None
            await self._cluster.patch_run_status(
                run["metadata"]["name"], patch, resource_version=version
            )

    async def event(self, run: dict[str, Any], type_: str, reason: str, message: str) -> None:
        await self._cluster.post_event(run, type_, reason, message, self._clock())

    async def finish(self, run: dict[str, Any], old: TaskRunStatus, new: TaskRunStatus) -> None:
        """Write a final status, and the Event of its last condition."""
        await self.write(run, old, new)
        # Counted once written: a write refused (`RunChanged`) is decided again, and a final
        # status is never written twice.
        metrics.run_finished(run, new)
        condition = new.conditions[-1] if new.conditions else None
        if condition is not None:
            kind = "Normal" if new.phase == RunPhase.COMPLETED.value else "Warning"
            await self.event(run, kind, condition.reason, condition.message)

    async def end(self, run: dict[str, Any], status: TaskRunStatus, end: RunEnd) -> None:
        """End the run for a reason that is not an attempt's result."""
        new = finished(
            status,
            end.phase,
            self._clock(),
            reason=end.reason,
            message=end.message,
            error=end.error,
        )
        await self.finish(run, status, new)

    async def fail(
        self, run: dict[str, Any], status: TaskRunStatus | None, error_type: str, message: str
    ) -> None:
        """End the run as a SystemFailure: podtask, not the task, could not go on."""
        if (run.get("status") or {}).get("phase") == RunPhase.SYSTEM_FAILURE.value:
            return
        if status is None:
            # The status itself does not parse: replace the fields that say how it ended.
            error = bounded_error(RunError(type=error_type, message=message))
            await self._cluster.patch_run_status(
                run["metadata"]["name"],
                status_changes(
                    run.get("status"),
                    {
                        "phase": RunPhase.SYSTEM_FAILURE.value,
                        "error": error.to_wire(),
                        "finishedAt": self._clock().isoformat(),
                    },
                ),
            )
            metrics.run_finished(run, TaskRunStatus(phase=RunPhase.SYSTEM_FAILURE))
            return
        error = RunError(type=error_type, message=message)
        await self.end(run, status, RunEnd(RunPhase.SYSTEM_FAILURE, error_type, message, error))
