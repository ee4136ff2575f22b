"""When a `TaskSchedule` ticks, which run its tick triggers, and the status that says so:
the operator's decisions about schedules, without I/O (`schedule_ticker` carries them out).

The cursor. The status's `nextTimestamp` is the first tick not yet passed, written at every
tick: every leader, and a leader after a restart, go on from there. A schedule the operator
has not yet described (no `observedGeneration`) counts its ticks from its creation; one
whose spec changed since (`observedGeneration` behind `generation`: a new cron, a zone, a
deactivation ended) from the moment this operator saw the change, so that a new cron's
ticks from before the change never run, nor those of a time it was inactive.

The tick. A tick due at its time triggers its run. When several are due at once (the
operator was down, or could not reach the cluster for a while), they are not run in a
burst: only the latest, and, with `PODTASK_MISSED_TICKS=skip`, not even that when it came
before this operator saw the schedule. The run's name is the tick's (`tick_run_name`), so
that a tick triggered twice (a leader killed between creating the run and writing the
status) is an AlreadyExists: it runs once.

The status. `lastTimestamp` and `lastRunId` name the latest tick that triggered a run;
`nextTimestamp` the tick to come (none while inactive); the condition `Ready` says why a
schedule does not tick (Inactive, InvalidSchedule) or why its latest tick ran nothing
(TaskNotDeployed, InvalidTask, RunRefused): that tick counts as passed all the same.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# `podtask._contract.schedules` imports croniter only where a cron expression is read (task
# pods read none); the operator reads them, so it imports croniter at start: its import runs a
# process (`file -b python`, through platform.architecture), not to be run inside the event
# loop at the first schedule.
import croniter  # noqa: F401
from pydantic import ValidationError

from podtask._contract.bounded_text import head
from podtask._contract.kube_names import is_label_value
from podtask._contract.limits import MAX_CONDITION_MESSAGE_BYTES, MAX_TAG_LENGTH
from podtask._contract.resources import (
    Condition,
    ConditionStatus,
    TaskScheduleSpec,
    TaskScheduleStatus,
    TaskSpec,
    parse_timestamp,
)
from podtask._contract.schedules import (
    CronSchedule,
    format_tick,
    scheduled_payload,
    tick_run_name,
    upcoming,
)
from podtask._contract.trigger_request import WireTriggerOptions
from podtask._contract.wire import LABEL_SCHEDULE
from podtask._control.task_runs import run_labels, run_spec, task_run_object

READY = "Ready"
# Ready=True: the schedule ticks, and its latest tick triggered its run.
SCHEDULED = "Scheduled"
# Ready=False: it does not tick.
INACTIVE = "Inactive"
INVALID_SCHEDULE = "InvalidSchedule"
# Ready=False: its latest tick triggered nothing (and counts as passed).
TASK_NOT_DEPLOYED = "TaskNotDeployed"
INVALID_TASK = "InvalidTask"
RUN_REFUSED = "RunRefused"


# Due ticks counted for the log, at most (a minute's schedule down for a day has 1,440).
_COUNTED = 100


class MissedTicks(enum.StrEnum):
    """What becomes of ticks that passed while no operator could trigger them."""

    RUN_LATEST = "run-latest"  # the latest of them runs, late; the others never
    SKIP = "skip"  # none of them runs


@dataclass(frozen=True)
class ScheduleView:
    """A TaskSchedule as the operator reads it. `spec` is None when it cannot be read (a
    cron or a zone stored with kubectl that no schedule can have): `problem` says why."""

    name: str
    generation: int | None
    created_at: datetime | None
    spec: TaskScheduleSpec | None
    problem: str | None
    status: TaskScheduleStatus
    # Only its timing, for the cursor: its cron in its zone (None when `spec` is).
    cron: CronSchedule | None

    @property
    def changed_unseen(self) -> bool:
        """Whether its spec changed since its status was last written."""
        observed = self.status.observed_generation
        return observed is not None and observed != self.generation


def _problem(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        # A validator's message ("Value error, invalid cron expression ...") without its prefix.
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"spec.{where}: {message}" if where else message)
    return "; ".join(parts)


def read_schedule(body: Mapping[str, Any]) -> ScheduleView:
    """The operator's view of a TaskSchedule object (as a watch event or a read gives it)."""
    metadata = body.get("metadata") or {}
    try:
        status = TaskScheduleStatus.model_validate(body.get("status") or {})
    except ValidationError:
        # A status it cannot read is one it rewrites whole: as if it had never written one.
        status = TaskScheduleStatus()
    spec: TaskScheduleSpec | None = None
    problem: str | None = None
    cron: CronSchedule | None = None
    try:
        spec = TaskScheduleSpec.model_validate(body.get("spec") or {})
        cron = CronSchedule(spec.cron, spec.timezone)
    except ValidationError as error:
        spec, problem = None, _problem(error)
    except ValueError as error:  # InvalidSchedule: checked again, by the schedule itself
        spec, problem = None, str(error)
    generation = metadata.get("generation")
    return ScheduleView(
        name=str(metadata.get("name") or ""),
        generation=generation if isinstance(generation, int) else None,
        created_at=parse_timestamp(metadata.get("creationTimestamp")),
        spec=spec,
        problem=problem,
        status=status,
        cron=cron,
    )


@dataclass(frozen=True)
class TickPlan:
    """What one look at a schedule decides: the tick to trigger now (if any), and the tick
    after it, which the schedule waits for (None: it waits for nothing but a change).

    `passed` counts the due ticks that trigger nothing (missed, or left behind by a later
    one); `late`: `tick` came before this operator saw the schedule."""

    tick: datetime | None
    next_tick: datetime | None
    passed: int = 0
    late: bool = False


def cursor(view: ScheduleView, seen_at: datetime) -> datetime | None:
    """The first tick of `view` not yet passed. `seen_at`: when this operator first saw the
    schedule's current generation (the moment of a change it did not see being written)."""
    if view.cron is None:
        return None
    status = view.status
    described = status.observed_generation is not None and not view.changed_unseen
    if described and status.next_timestamp is not None:
        return status.next_timestamp
    start = seen_at
    if status.observed_generation is None and view.created_at is not None:
        start = view.created_at
    if status.last_timestamp is not None:
        start = max(start, status.last_timestamp)
    return view.cron.next_tick(start)


def plan_ticks(
    view: ScheduleView, now: datetime, seen_at: datetime, missed: MissedTicks
) -> TickPlan:
    """Which tick of `view` to trigger at `now`, if any, and the one to wait for next."""
    if view.spec is None or view.cron is None or not view.spec.active:
        return TickPlan(tick=None, next_tick=None)
    first = cursor(view, seen_at)
    if first is None or first > now:
        return TickPlan(tick=None, next_tick=first)
    latest = view.cron.latest_tick(now)
    following = view.cron.next_tick(now)
    if latest is None or latest < first:
        # Due ticks all beyond the look-back (a leap day's, years ago): none is run.
        return TickPlan(tick=None, next_tick=following, passed=1)
    due = 1 + len(view.cron.ticks_between(first, latest, limit=_COUNTED))
    late = latest < seen_at
    if late and missed is MissedTicks.SKIP:
        return TickPlan(tick=None, next_tick=following, passed=due)
    return TickPlan(tick=latest, next_tick=following, passed=due - 1, late=late)


@dataclass(frozen=True)
class TickOutcome:
    """What became of a tick: the run it triggered (created now or found created), or, with
    no run, the reason (a `Ready` reason) and the words for it."""

    run_id: str | None
    reason: str = SCHEDULED
    message: str = ""


def triggered(run_id: str) -> TickOutcome:
    return TickOutcome(run_id=run_id)


def not_triggered(reason: str, message: str) -> TickOutcome:
    return TickOutcome(run_id=None, reason=reason, message=message)


def task_not_deployed(view: ScheduleView, tick: datetime, namespace: str) -> TickOutcome:
    task_id = view.spec.task_id if view.spec else "?"
    return not_triggered(
        TASK_NOT_DEPLOYED,
        f"task {task_id!r} is not deployed in namespace {namespace!r}: the tick of "
        f"{format_tick(tick)} triggered no run (deploy the task; the next tick will)",
    )


def _ready(
    previous: list[Condition], ok: bool, reason: str, message: str, now: datetime
) -> list[Condition]:
    """The conditions with `Ready` as given, its transition time kept while its status is."""
    status = ConditionStatus.TRUE if ok else ConditionStatus.FALSE
    old = next((c for c in previous if c.type == READY), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    ready = Condition(
        type=READY,
        status=status,
        reason=reason,
        message=head(message, MAX_CONDITION_MESSAGE_BYTES),
        last_transition_time=since,
    )
    return [*(c for c in previous if c.type != READY), ready]


def settled_status(
    view: ScheduleView, plan: TickPlan, outcome: TickOutcome | None, now: datetime
) -> TaskScheduleStatus:
    """The status of `view` once `plan` is carried out (`outcome`: what its tick did)."""
    status = view.status
    conditions = status.conditions
    update: dict[str, Any] = {
        "next_timestamp": plan.next_tick,
        "observed_generation": view.generation,
    }
    if view.spec is None:
        message = f"{view.problem}; it does not tick until its spec is fixed"
        conditions = _ready(conditions, False, INVALID_SCHEDULE, message, now)
    elif not view.spec.active:
        message = "deactivated: it does not tick until it is activated"
        conditions = _ready(conditions, False, INACTIVE, message, now)
    elif outcome is not None and outcome.run_id is None:
        conditions = _ready(conditions, False, outcome.reason, outcome.message, now)
    elif outcome is not None or _reason(status) in (None, INACTIVE, INVALID_SCHEDULE):
        # Its latest tick triggered its run, or it ticks again (after a change): ready. A
        # tick that ran nothing stays the news until a tick runs.
        message = f"each tick triggers a run of task {view.spec.task_id!r}"
        conditions = _ready(conditions, True, SCHEDULED, message, now)
    if outcome is not None and outcome.run_id is not None and plan.tick is not None:
        update["last_timestamp"] = plan.tick
        update["last_run_id"] = outcome.run_id
    update["conditions"] = conditions
    return status.model_copy(update=update)


def _reason(status: TaskScheduleStatus) -> str | None:
    return next((c.reason for c in status.conditions if c.type == READY), None)


def status_patch(current: TaskScheduleStatus, desired: TaskScheduleStatus) -> dict[str, Any]:
    """The merge patch of the status that makes `current` `desired`: only what differs (a
    null removes a field: the next tick of a schedule that no longer ticks)."""
    old = current.model_dump(mode="json", by_alias=True)
    new = desired.model_dump(mode="json", by_alias=True)
    return {key: value for key, value in new.items() if old.get(key) != value}


def scheduled_run(
    view: ScheduleView, task: TaskSpec, tick: datetime, now: datetime
) -> dict[str, Any]:
    """The TaskRun that `tick` of `view` triggers: a run of `task` as a trigger without
    options makes it, the schedule's payload, tagged and labelled with the schedule."""
    assert view.spec is not None and view.cron is not None, "an invalid schedule never ticks"
    name = tick_run_name(view.name, tick)
    payload = scheduled_payload(
        view.name, view.spec, tick, view.status.last_timestamp, upcoming(view.cron, tick)
    )
    # A name too long for a tag or a label (only kubectl can give one) still triggers its
    # runs: they are the schedule's by their payload's scheduleId.
    tags = [view.name] if len(view.name) <= MAX_TAG_LENGTH else []
    spec = run_spec(task, payload, WireTriggerOptions(tags=tags), now=now)
    labels = run_labels(task)
    if is_label_value(view.name):
        labels[LABEL_SCHEDULE] = view.name
    return task_run_object({"name": name, "labels": labels}, spec)
