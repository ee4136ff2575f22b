"""Acting on a run's wait: write what `waits` decided, and keep the scheduler's count in step.

The reconciler calls `WaitWrites.step` for a run whose attempt runs on, and `resume` when the
scheduler admitted a run whose wait is over. Each write is guarded like every decision
(`run_writes`): a runner's call that lands in between makes it fail with `RunChanged`, and
the run is decided again from a fresh read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from podtask._contract.resources import TaskRunSpec, TaskRunStatus
from podtask_operator.cluster import RunChanged
from podtask_operator.pods import pod_name
from podtask_operator.queues import BucketKey
from podtask_operator.run_writes import RunWriter
from podtask_operator.scheduler import Scheduler
from podtask_operator.waits import (
    WAITING_CONDITION,
    WaitStep,
    continued,
    released,
    resume_waiting,
    resumed,
    wait_step,
)


class WaitWrites:
    def __init__(
        self, scheduler: Scheduler, writer: RunWriter, clock: Callable[[], datetime]
    ) -> None:
        self._scheduler = scheduler
        self._writer = writer
        self._clock = clock

    async def step(
        self, run: dict[str, Any], spec: TaskRunSpec, status: TaskRunStatus, created: str
    ) -> BucketKey | None:
        """Bring the wait of a run whose attempt runs on a step forward; the bucket to admit
        from when a slot freed up or the run now waits for one. `created`: its line stamp."""
        name = run["metadata"]["name"]
        pod = pod_name(name, status.attempt)
        step = wait_step(status)
        if step is WaitStep.RELEASE:
            await self._writer.write(run, status, released(status, self._clock()))
            return self._scheduler.release(spec, pod)
        if step is WaitStep.CONTINUE:
            await self._writer.write(run, status, continued(status, self._clock()))
            return None
        if step is WaitStep.HOLD:
            # Again after a restart: the scheduler's memory of it is rebuilt from the status.
            return self._scheduler.release(spec, pod)
        if step is WaitStep.RESUME:
            self._scheduler.release(spec, pod)
            if spec.cancel_requested_at is not None:
                return None  # the cancel ends it; it takes no slot for that
            return self._scheduler.enqueue(name, spec, created, resuming=True)
        return None

    async def resume(
        self, run: dict[str, Any], spec: TaskRunSpec, status: TaskRunStatus
    ) -> str | None:
        """Resume an admitted run whose wait is over; its pod, which holds a slot again (None
        when it no longer needs one)."""
        if wait_step(status) is not WaitStep.RESUME or spec.cancel_requested_at is not None:
            return None
        await self._writer.write(run, status, resumed(status, self._clock()))
        return pod_name(run["metadata"]["name"], status.attempt)

    async def say_why(
        self, run: dict[str, Any], status: TaskRunStatus, why: tuple[str, str]
    ) -> None:
        """Say in a resuming run's status why it waits for a slot (once per reason: its
        position changes with every admission, and each write would be an event more)."""
        if wait_step(status) is not WaitStep.RESUME:
            return
        reason, message = why
        said = next((c for c in status.conditions if c.type == WAITING_CONDITION), None)
        if said is not None and said.reason == reason:
            return
        saying = resume_waiting(status, reason, message, self._clock())
        with contextlib.suppress(RunChanged):  # reconciled from the watch event of that write
            await self._writer.write(run, status, saying)
