"""`ScheduleTicker`: each TaskSchedule's ticks, carried out. The decisions are
`schedule_ticks`'; this module waits for them and makes the calls.

One asyncio task per schedule the watch shows (`schedule_changed`, from the kopf handler):
it looks at the schedule (`plan_ticks`), triggers the tick that is due (reads the Task,
creates the run under the tick's name: an AlreadyExists is a tick triggered already),
writes the status (`settled_status`, only what changed), then sleeps until the next tick
or until the schedule changes. Nothing polls the cluster: between ticks a schedule costs a
sleeping task. A call that fails (the cluster unreachable, a 5xx after `Kube`'s retries)
leaves the status as it was and is tried again after a backoff: the tick is still due.

It runs only in the leader (kopf starts it once leading, and a leader that loses its Lease
exits), and the run's name is the tick's: whatever kills an operator when, a tick
triggers at most one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from podtask._contract.resources import TaskSpec
from podtask._contract.schedules import format_tick
from podtask_operator.kube import Refused
from podtask_operator.schedule_ticks import (
    INVALID_TASK,
    RUN_REFUSED,
    MissedTicks,
    ScheduleView,
    TickOutcome,
    TickPlan,
    not_triggered,
    plan_ticks,
    read_schedule,
    scheduled_run,
    settled_status,
    status_patch,
    task_not_deployed,
    triggered,
)

log = logging.getLogger(__name__)

# After a failed look, the next one waits this long, doubling up to the most.
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0
# The longest sleep before a schedule's tick is looked at again: the loop sleeps on the
# monotonic clock, while ticks are wall-clock times, which may be stepped meanwhile.
MAX_SLEEP_SECONDS = 600.0


class ScheduleApi(Protocol):
    """The calls the ticker makes: what `cluster.Cluster` implements."""

    namespace: str

    async def get_task(self, task_id: str) -> dict[str, Any] | None: ...

    async def create_run(self, body: dict[str, Any]) -> bool: ...

    async def patch_schedule_status(self, name: str, status: dict[str, Any]) -> bool: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Followed:
    """One schedule as the ticker follows it: its latest body, and when this operator first
    saw its current generation (where an unseen change counts from)."""

    body: Mapping[str, Any]
    generation: object
    seen_at: datetime
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class ScheduleTicker:
    def __init__(
        self,
        api: ScheduleApi,
        missed: MissedTicks = MissedTicks.RUN_LATEST,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._api = api
        self._missed = missed
        self._clock = clock
        self._followed: dict[str, _Followed] = {}

    @property
    def followed(self) -> list[str]:
        return sorted(self._followed)

    def schedule_changed(self, name: str, body: Mapping[str, Any] | None) -> None:
        """The watch's news of one schedule: its body, or None once it is deleted."""
        followed = self._followed.get(name)
        if body is None:
            if followed is not None:
                del self._followed[name]
                if followed.task is not None:
                    followed.task.cancel()
            return
        generation = (body.get("metadata") or {}).get("generation")
        if followed is None:
            followed = _Followed(body=body, generation=generation, seen_at=self._clock())
            self._followed[name] = followed
            followed.task = asyncio.create_task(self._follow(name, followed), name=f"tick-{name}")
            return
        if generation != followed.generation:
            followed.generation, followed.seen_at = generation, self._clock()
        followed.body = body
        followed.changed.set()

    async def close(self) -> None:
        """Stop following every schedule (the operator stops)."""
        tasks = [f.task for f in self._followed.values() if f.task is not None]
        self._followed.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self, name: str, followed: _Followed) -> None:
        retry = FIRST_RETRY_SECONDS
        while self._followed.get(name) is followed:
            # Cleared before the body is read: a change while this look runs wakes the next.
            followed.changed.clear()
            try:
                wake_at = await self._look(name, followed)
            except Exception as exc:
                log.warning("schedule %s: %s; looking again in %gs", name, exc, retry)
                pause: float | None = retry
                retry = min(retry * 2, MAX_RETRY_SECONDS)
            else:
                retry = FIRST_RETRY_SECONDS
                pause = None
                if wake_at is not None:
                    until = (wake_at - self._clock()).total_seconds()
                    pause = min(max(until, 0.0), MAX_SLEEP_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(followed.changed.wait(), timeout=pause)

    async def _look(self, name: str, followed: _Followed) -> datetime | None:
        """Trigger what is due of the schedule and write its status; the tick to wake for."""
        view = read_schedule(followed.body)
        now = self._clock()
        plan = plan_ticks(view, now, followed.seen_at, self._missed)
        outcome = None
        if plan.tick is not None:
            outcome = await self._trigger(view, plan.tick, now)
        _log_look(view, plan, outcome)
        desired = settled_status(view, plan, outcome, now)
        patch = status_patch(view.status, desired)
        if patch:
            if not await self._api.patch_schedule_status(name, patch):
                return None  # deleted: the watch says so next
            # The next look starts from what was written, not from the watch's older copy.
            written = desired.model_dump(mode="json", by_alias=True, exclude_none=True)
            followed.body = {**followed.body, "status": written}
        return plan.next_tick

    async def _trigger(self, view: ScheduleView, tick: datetime, now: datetime) -> TickOutcome:
        assert view.spec is not None
        task_id = view.spec.task_id
        task = await self._api.get_task(task_id)
        if task is None:
            return task_not_deployed(view, tick, self._api.namespace)
        try:
            spec = TaskSpec.model_validate(task.get("spec") or {})
        except ValidationError as exc:
            return not_triggered(
                INVALID_TASK,
                f"the Task object {task_id!r} is malformed (deploy it again): the tick of "
                f"{format_tick(tick)} triggered no run ({exc.error_count()} errors)",
            )
        body = scheduled_run(view, spec, tick, now)
        run_id = str(body["metadata"]["name"])
        try:
            created = await self._api.create_run(body)
        except Refused as exc:
            return not_triggered(
                RUN_REFUSED,
                f"the cluster refused the run of the tick of {format_tick(tick)}: {exc.message}",
            )
        if not created:
            log.info(
                "schedule %s: the tick of %s had triggered %s", view.name, format_tick(tick), run_id
            )
        return triggered(run_id)


def _log_look(view: ScheduleView, plan: TickPlan, outcome: TickOutcome | None) -> None:
    if plan.passed:
        log.info("schedule %s: %d missed tick(s) passed without a run", view.name, plan.passed)
    if plan.tick is None or outcome is None:
        return
    late = " (late: it came while no operator led)" if plan.late else ""
    if outcome.run_id is not None:
        tick, run_id = format_tick(plan.tick), outcome.run_id
        log.info("schedule %s: the tick of %s triggered %s%s", view.name, tick, run_id, late)
    else:
        log.warning("schedule %s: %s", view.name, outcome.message)
