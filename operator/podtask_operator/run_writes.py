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

from pydantic import ValidationError

from podtask._contract.bounded_errors import bounded_error
from podtask._contract.resources import RunError, RunPhase, TaskRunStatus
from podtask._contract.run_endings import COMPLETED_MESSAGE, completed_by_report, finished
from podtask._contract.status_patches import status_changes, status_update
from podtask_operator import metrics
from podtask_operator.attempts import AttemptKind
from podtask_operator.cluster import ClusterApi, RunChanged
from podtask_operator.lifecycle import RunEnd

# The runner's report belongs to the API; the operator never writes it, but for one thing:
# the output it moves to `status.output` when it completes the run (`output_moved`): the API
# completes a run itself as it records a report of success (`run_endings.completed`), so this
# is for a report it found before the attempt was recorded. The run's metadata too (the API
# writes what the task sends): whatever the operator read, it leaves it.
_API_OWNED = frozenset({"report", "metadata"})
# Runs finished here remembered until their pod ends (`RunWriter.settle_completion`): a run
# is finished here while its pod runs only when stopped (a cancel, maxDuration, a ttl).
FINISHED_MEMORY = 4096
# Tries of an unguarded write of a run that had no status when it was read (`RunWriter.write`).
UNGUARDED_TRIES = 5


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
    patch = status_update(read, old.to_wire(), new.to_wire(), leave=_API_OWNED)
    report = read.get("report") if isinstance(read, dict) else None
    if output_moved(old, new) and isinstance(report, dict) and "output" in report:
        # Only that key of the report: the rest is the API's.
        patch.append({"op": "remove", "path": "/status/report/output"})
    return patch


def _pin(run: dict[str, Any], *, guarded: bool) -> str | None:
    """The resourceVersion a status write onto `run` (as read) applies to only; None: any.

    A guarded write is pinned. So is any write onto a run read without a status (or with one
    that is not an object): its patch is one `add` of the whole status, which onto a later
    version would replace what was written since (a runner's report made before its attempt
    was recorded, or a status fixed meanwhile)."""
    if guarded or not isinstance(run.get("status"), dict):
        return run["metadata"].get("resourceVersion")  # type: ignore[no-any-return]
    return None


class RunWriter:
    """Writes what the reconciler decided about a run, and posts the Events that explain it."""

    def __init__(self, cluster: ClusterApi, clock: Callable[[], datetime]) -> None:
        self._cluster = cluster
        self._clock = clock
        # The runs whose final status this writer wrote, oldest first (`settle_completion`).
        self._finished: dict[str, None] = {}

    async def write(
        self,
        run: dict[str, Any],
        old: TaskRunStatus,
        new: TaskRunStatus,
        *,
        guarded: bool = True,
    ) -> None:
        """Write the change from `old` to `new`; `guarded`, only onto the version of `run`
        they were decided from (else `RunChanged`); unguarded, onto whatever the run's status
        holds by then."""
        name = run["metadata"]["name"]
        for _ in range(UNGUARDED_TRIES - 1):
            try:
                await self._write_once(run, old, new, guarded=guarded)
                return
            except RunChanged:
                if guarded:
                    raise
            # A run read with no status: its write was the whole status, pinned (below); the
            # fresh read has one, which this change is now written onto, field by field.
            fresh = await self._cluster.get_run(name)
            if fresh is None:
                return
            run = fresh
        await self._write_once(run, old, new, guarded=guarded)

    async def _write_once(
        self, run: dict[str, Any], old: TaskRunStatus, new: TaskRunStatus, *, guarded: bool
    ) -> None:
        read = run.get("status")
        patch = status_patch(read, old, new)
        if patch:
            await self._cluster.patch_run_status(
                run["metadata"]["name"], patch, resource_version=_pin(run, guarded=guarded)
            )

    async def event(self, run: dict[str, Any], type_: str, reason: str, message: str) -> None:
        await self._cluster.post_event(run, type_, reason, message, self._clock())

    async def finish(self, run: dict[str, Any], old: TaskRunStatus, new: TaskRunStatus) -> None:
        """Write a final status, and the Event of its last condition."""
        await self.write(run, old, new)
        # Counted once written: a write refused (`RunChanged`) is decided again, and a final
        # status is never written twice.
        metrics.run_finished(run, new)
        self._finished[run["metadata"]["name"]] = None
        while len(self._finished) > FINISHED_MEMORY:
            del self._finished[next(iter(self._finished))]
        condition = new.conditions[-1] if new.conditions else None
        if condition is not None:
            kind = "Normal" if new.phase == RunPhase.COMPLETED.value else "Warning"
            await self.event(run, kind, condition.reason, condition.message)

    async def settle_completion(self, run: dict[str, Any]) -> None:
        """Once the pod of `run` has ended (seen running, then ended): the Event and the counts of
        a completion the API wrote as it recorded the report (`run_endings.completed`), which
        `finish` gives a final status written here. Not for a run this writer finished: its
        Event is posted, its counts made."""
        name = run["metadata"]["name"]
        if name in self._finished:
            del self._finished[name]
            return
        try:
            status = TaskRunStatus.model_validate(run.get("status") or {})
        except ValidationError:
            return
        if not completed_by_report(status):
            return
        metrics.run_finished(run, status)
        task = str((run.get("spec") or {}).get("taskId") or "")
        metrics.attempt_ended(task, AttemptKind.SUCCEEDED.value)
        await self.event(run, "Normal", RunPhase.COMPLETED.value, COMPLETED_MESSAGE)

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
            read = run.get("status")
            await self._cluster.patch_run_status(
                run["metadata"]["name"],
                status_changes(
                    read,
                    {
                        "phase": RunPhase.SYSTEM_FAILURE.value,
                        "error": error.to_wire(),
                        "finishedAt": self._clock().isoformat(),
                    },
                ),
                resource_version=_pin(run, guarded=False),
            )
            metrics.run_finished(run, TaskRunStatus(phase=RunPhase.SYSTEM_FAILURE))
            return
        error = RunError(type=error_type, message=message)
        await self.end(run, status, RunEnd(RunPhase.SYSTEM_FAILURE, error_type, message, error))
