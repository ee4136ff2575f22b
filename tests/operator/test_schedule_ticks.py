"""The operator's decisions about schedules (`schedule_ticks`), at explicit moments: which
tick is due, which missed tick runs (`PODTASK_MISSED_TICKS`), where a changed schedule
counts from, the status written, and the run a tick triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podtask._contract.resources import (
    TaskScheduleStatus,
    format_timestamp,
)
from podtask._contract.schedules import CronSchedule, tick_run_name
from podtask._contract.trigger_request import WireTriggerOptions
from podtask._contract.wire import LABEL_QUEUE, LABEL_SCHEDULE, LABEL_TASK
from podtask._control.task_runs import run_spec
from podtask_operator.schedule_ticks import (
    INACTIVE,
    INVALID_SCHEDULE,
    READY,
    SCHEDULED,
    TASK_NOT_DEPLOYED,
    MissedTicks,
    ScheduleView,
    TickPlan,
    plan_ticks,
    read_schedule,
    scheduled_run,
    settled_status,
    status_patch,
    task_not_deployed,
    triggered,
)
from tests.sdk.test_control_task_runs import TASK

RUN_LATEST, SKIP = MissedTicks.RUN_LATEST, MissedTicks.SKIP
CREATED = datetime(2026, 5, 4, 9, 30, 30, tzinfo=UTC)


def at(minute: int, second: float = 0) -> datetime:
    """09:<minute>:<second> on the day the schedule was created."""
    return datetime(2026, 5, 4, 9, 0, tzinfo=UTC) + timedelta(minutes=minute, seconds=second)


def schedule(
    status: dict[str, Any] | None = None,
    *,
    cron: str = "* * * * *",
    generation: int = 1,
    name: str = "hello-world",
    **spec: Any,
) -> ScheduleView:
    body: dict[str, Any] = {
        "apiVersion": "podtask.dev/v1alpha1",
        "kind": "TaskSchedule",
        "metadata": {
            "name": name,
            "generation": generation,
            "creationTimestamp": format_timestamp(CREATED),
        },
        "spec": {"taskId": "hello-world", "cron": cron, "type": "DECLARATIVE", **spec},
    }
    if status is not None:
        body["status"] = status
    return read_schedule(body)


def described(next_tick: datetime | None, generation: int = 1, **more: Any) -> dict[str, Any]:
    """A status as the operator writes it for `generation`, waiting for `next_tick`."""
    status: dict[str, Any] = {"observedGeneration": generation, **more}
    if next_tick is not None:
        status["nextTimestamp"] = format_timestamp(next_tick)
    return status


# --- which tick --------------------------------------------------------------------------


def test_a_new_schedule_waits_for_its_first_tick_after_its_creation() -> None:
    plan = plan_ticks(schedule(), at(30, 40), seen_at=at(30, 40), missed=RUN_LATEST)
    assert plan == TickPlan(tick=None, next_tick=at(31))


def test_the_tick_it_waited_for_runs_at_its_time() -> None:
    view = schedule(described(at(31)))
    plan = plan_ticks(view, at(31, 0.2), seen_at=at(30, 40), missed=SKIP)
    assert plan == TickPlan(tick=at(31), next_tick=at(32))
    # Just before, it still waits (the loop's timer may fire a hair early).
    assert plan_ticks(view, at(30, 59.99), at(30, 40), SKIP) == TickPlan(None, at(31))


@pytest.mark.parametrize("missed", list(MissedTicks))
def test_ticks_missed_while_no_operator_led_run_at_most_the_latest(missed: MissedTicks) -> None:
    # The status says 09:31 was next; the operator comes back at 09:35:10.
    view = schedule(described(at(31), lastTimestamp=format_timestamp(at(30))))
    plan = plan_ticks(view, at(35, 10), seen_at=at(35, 10), missed=missed)
    if missed is RUN_LATEST:
        assert plan == TickPlan(tick=at(35), next_tick=at(36), passed=4, late=True)
    else:
        assert plan == TickPlan(tick=None, next_tick=at(36), passed=5)


def test_a_tick_triggered_but_not_yet_written_is_triggered_again_under_its_name() -> None:
    """A leader killed between creating the 09:31 run and writing the status: its successor
    triggers 09:31 again, which is an AlreadyExists of the same run."""
    view = schedule(described(at(31)))
    plan = plan_ticks(view, at(31, 6), seen_at=at(31, 5), missed=RUN_LATEST)
    assert (plan.tick, plan.late) == (at(31), True)


def test_a_schedule_never_described_counts_from_its_creation() -> None:
    plan = plan_ticks(schedule(), at(33, 10), seen_at=at(33, 10), missed=RUN_LATEST)
    assert plan == TickPlan(tick=at(33), next_tick=at(34), passed=2, late=True)
    assert plan_ticks(schedule(), at(33, 10), at(33, 10), SKIP).tick is None


def test_a_change_the_operator_did_not_see_written_counts_from_when_it_saw_it() -> None:
    """A new cron (or an activation) must not run the ticks from before it: the status is of
    generation 1, the spec of generation 2, seen at 09:40:10."""
    stale = described(at(21), lastTimestamp=format_timestamp(at(20)))
    view = schedule(stale, cron="*/5 * * * *", generation=2)
    plan = plan_ticks(view, at(40, 20), seen_at=at(40, 10), missed=RUN_LATEST)
    assert plan == TickPlan(tick=None, next_tick=at(45))
    # Once written for generation 2, its nextTimestamp is the cursor again.
    settled = settled_status(view, plan, None, at(40, 20))
    assert settled.observed_generation == 2 and settled.next_timestamp == at(45)


def test_an_inactive_schedule_does_not_tick_and_says_so() -> None:
    view = schedule(described(at(31)), active=False, generation=2)
    plan = plan_ticks(view, at(35), seen_at=at(34), missed=RUN_LATEST)
    assert plan == TickPlan(tick=None, next_tick=None)
    status = settled_status(view, plan, None, at(35))
    assert status.next_timestamp is None and status.observed_generation == 2
    (ready,) = status.conditions
    assert (ready.type, ready.status, ready.reason) == (READY, "False", INACTIVE)


def test_ticks_are_wall_times_in_the_schedules_zone() -> None:
    """09:00 in Paris, the day the clocks go forward: 07:00 UTC instead of 08:00."""
    day_before = datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # 09:00 CET
    view = schedule(described(day_before), cron="0 9 * * *", timezone="Europe/Paris")
    now = day_before + timedelta(seconds=1)
    plan = plan_ticks(view, now, seen_at=now - timedelta(days=1), missed=SKIP)
    assert plan == TickPlan(tick=day_before, next_tick=datetime(2026, 3, 29, 7, 0, tzinfo=UTC))


def test_a_schedule_no_cron_can_have_is_reported_not_ticked() -> None:
    view = schedule(cron="61 * * * *")
    assert view.spec is None and view.problem is not None and "'61 * * * *'" in view.problem
    plan = plan_ticks(view, at(35), seen_at=at(35), missed=RUN_LATEST)
    assert plan == TickPlan(tick=None, next_tick=None)
    (ready,) = settled_status(view, plan, None, at(35)).conditions
    assert (ready.status, ready.reason) == ("False", INVALID_SCHEDULE)
    assert "spec.cron" in ready.message and "'61 * * * *'" in ready.message


# --- the status --------------------------------------------------------------------------


def test_a_triggered_tick_is_the_last_and_the_following_one_next() -> None:
    view = schedule(described(at(31)))
    plan = plan_ticks(view, at(31, 1), seen_at=at(30, 40), missed=RUN_LATEST)
    status = settled_status(view, plan, triggered("run-abc"), at(31, 1))
    assert (status.last_timestamp, status.last_run_id) == (at(31), "run-abc")
    assert (status.next_timestamp, status.observed_generation) == (at(32), 1)
    (ready,) = status.conditions
    assert (ready.status, ready.reason) == ("True", SCHEDULED)
    assert ready.last_transition_time == at(31, 1)


def test_a_tick_whose_task_is_not_deployed_passes_and_says_why() -> None:
    earlier = described(at(31), lastTimestamp=format_timestamp(at(30)), lastRunId="run-old")
    view = schedule(earlier)
    plan = plan_ticks(view, at(31, 1), seen_at=at(30, 40), missed=RUN_LATEST)
    outcome = task_not_deployed(view, at(31), "tasks")
    status = settled_status(view, plan, outcome, at(31, 1))
    assert (status.last_timestamp, status.last_run_id) == (at(30), "run-old")
    assert status.next_timestamp == at(32)
    (ready,) = status.conditions
    assert (ready.status, ready.reason) == ("False", TASK_NOT_DEPLOYED)
    assert "'hello-world'" in ready.message and "'tasks'" in ready.message
    assert "2026-05-04T09:31:00Z" in ready.message

    # Still not ready while it only waits; ready again once a tick triggers its run.
    written = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    waiting = schedule(written)
    idle = settled_status(waiting, TickPlan(None, at(32)), None, at(31, 30))
    assert idle.conditions == status.conditions
    later = plan_ticks(waiting, at(32, 1), seen_at=at(30, 40), missed=RUN_LATEST)
    (ready,) = settled_status(waiting, later, triggered("run-new"), at(32, 1)).conditions
    assert (ready.status, ready.last_transition_time) == ("True", at(32, 1))


def test_the_ready_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    view = schedule(described(at(31)))
    first = settled_status(view, TickPlan(at(31), at(32)), triggered("run-1"), at(31, 1))
    again = schedule(first.model_dump(mode="json", by_alias=True, exclude_none=True))
    second = settled_status(again, TickPlan(at(32), at(33)), triggered("run-2"), at(32, 1))
    assert second.conditions[0].last_transition_time == at(31, 1)


def test_the_status_patch_holds_only_what_changed() -> None:
    view = schedule(described(at(31)))
    desired = settled_status(view, TickPlan(None, at(31)), None, at(30, 50))
    current = desired.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert status_patch(TaskScheduleStatus.model_validate(current), desired) == {}
    moved = desired.model_copy(update={"next_timestamp": at(32)})
    assert status_patch(desired, moved) == {"nextTimestamp": "2026-05-04T09:32:00Z"}
    # A schedule that stops ticking has its next tick removed (a merge patch's null).
    stopped = desired.model_copy(update={"next_timestamp": None})
    assert status_patch(desired, stopped) == {"nextTimestamp": None}


# --- the run -----------------------------------------------------------------------------


def test_a_ticks_run_is_a_run_of_the_task_with_the_schedules_payload_tag_and_label() -> None:
    view = schedule(
        described(at(31), lastTimestamp=format_timestamp(at(30))), externalId="tenant-7"
    )
    run = scheduled_run(view, TASK, at(31), at(31, 0.5))
    assert run["metadata"] == {
        "name": tick_run_name("hello-world", at(31)),
        "labels": {
            LABEL_TASK: "hello-world",
            LABEL_QUEUE: "greetings",
            LABEL_SCHEDULE: "hello-world",
        },
    }
    payload = run["spec"]["payload"]
    assert payload == {
        "type": "DECLARATIVE",
        "scheduleId": "hello-world",
        "externalId": "tenant-7",
        "timestamp": "2026-05-04T09:31:00Z",
        "lastTimestamp": "2026-05-04T09:30:00Z",
        "timezone": "UTC",
        "upcoming": [f"2026-05-04T09:{minute}:00Z" for minute in range(32, 42)],
    }
    # Otherwise exactly what a trigger without options makes of the task.
    options = WireTriggerOptions(tags=["hello-world"])
    assert run["spec"] == run_spec(TASK, payload, options, now=at(31, 0.5)).to_wire()


def test_a_name_no_label_or_tag_can_hold_still_triggers_runs() -> None:
    name = "nightly-" + "x" * 130
    run = scheduled_run(schedule(name=name), TASK, at(31), at(31))
    assert LABEL_SCHEDULE not in run["metadata"]["labels"]
    assert run["spec"]["tags"] == [] and run["spec"]["payload"]["scheduleId"] == name
    medium = "nightly-" + "x" * 60
    run = scheduled_run(schedule(name=medium), TASK, at(31), at(31))
    assert LABEL_SCHEDULE not in run["metadata"]["labels"] and run["spec"]["tags"] == [medium]


def test_the_view_reads_what_the_cluster_stores() -> None:
    view = schedule(described(at(31)), timezone="Europe/Paris")
    assert view.cron == CronSchedule("* * * * *", "Europe/Paris")
    assert (view.name, view.generation, view.created_at) == ("hello-world", 1, CREATED)
    assert view.status.next_timestamp == at(31) and not view.changed_unseen
    # A status it cannot read is rewritten whole.
    broken = schedule({"nextTimestamp": "soon", "observedGeneration": "one"})
    assert broken.status == TaskScheduleStatus()
