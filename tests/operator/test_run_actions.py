"""`next_action`: what a run needs next, from its spec and status alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from podtask._contract.resources import (
    AttemptReport,
    RunError,
    RunPhase,
    TaskRunSpec,
    TaskRunStatus,
)
from podtask_operator.attempts import AttemptKind
from podtask_operator.run_actions import Next, RunAction, next_action

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = CREATED + timedelta(seconds=5)


def _spec(**changes: object) -> TaskRunSpec:
    return TaskRunSpec.model_validate(
        {
            "taskId": "t",
            "version": "1",
            "image": "i",
            "module": "m",
            "machine": "micro",
            "queue": {"name": "q"},
            **changes,
        }
    )


def _after(seconds: float) -> str:
    return (CREATED + timedelta(seconds=seconds)).isoformat()


def _retrying(retry_in: float, report: AttemptReport | None = None) -> TaskRunStatus:
    return TaskRunStatus(
        phase=RunPhase.WAITING_TO_RETRY,
        attempt=1,
        next_attempt_at=NOW + timedelta(seconds=retry_in),
        report=report,
    )


@pytest.mark.parametrize("phase", sorted(p for p in RunPhase if p.is_final))
def test_a_finished_run_needs_nothing_even_if_canceled(phase: RunPhase) -> None:
    status = TaskRunStatus(phase=phase, attempt=1)
    assert next_action(_spec(cancelRequestedAt=_after(1)), status, CREATED, NOW) == RunAction(
        Next.DONE
    )


def test_an_executing_run_watches_its_attempt_cancel_or_not() -> None:
    status = TaskRunStatus(phase=RunPhase.EXECUTING, attempt=1)
    assert next_action(_spec(), status, CREATED, NOW).next is Next.WATCH_ATTEMPT
    canceled = _spec(cancelRequestedAt=_after(1))
    assert next_action(canceled, status, CREATED, NOW).next is Next.WATCH_ATTEMPT


@pytest.mark.parametrize(
    "status",
    [TaskRunStatus(), TaskRunStatus(phase=RunPhase.QUEUED), _retrying(60)],
)
def test_a_cancel_before_an_attempt_runs_cancels(status: TaskRunStatus) -> None:
    canceled = _spec(cancelRequestedAt=_after(1), delayUntil=_after(60))
    assert next_action(canceled, status, CREATED, NOW).next is Next.CANCEL


def test_a_reported_success_ends_the_run_instead_of_a_retry() -> None:
    report = AttemptReport(attempt=1, ok=True, output={"a": 1})
    action = next_action(_spec(), _retrying(60, report), CREATED, NOW)
    assert action.next is Next.END_REPORTED and not action.startable
    assert action.result is not None
    assert (action.result.kind, action.result.output) == (AttemptKind.SUCCEEDED, {"a": 1})


@pytest.mark.parametrize(
    "report",
    [
        AttemptReport(attempt=1, ok=False, error=RunError(type="ValueError", message="no")),
        AttemptReport(attempt=2, ok=True),  # not this attempt's
    ],
)
def test_only_a_success_of_the_last_attempt_counts(report: AttemptReport) -> None:
    assert next_action(_spec(), _retrying(60, report), CREATED, NOW).next is Next.WAIT_FOR_RETRY


def test_a_retry_waits_for_its_backoff_then_starts_whatever_its_ttl() -> None:
    spec = _spec(ttlSeconds=1)  # the ttl is over, but it counts before the first attempt only
    waiting = next_action(spec, _retrying(30), CREATED, NOW)
    assert waiting == RunAction(Next.WAIT_FOR_RETRY, NOW + timedelta(seconds=30))
    due = next_action(spec, _retrying(0), CREATED, NOW)
    assert due == RunAction(Next.START)
    assert due.startable


def test_a_delayed_run_waits_for_its_delay() -> None:
    spec = _spec(delayUntil=_after(60), ttlSeconds=10)
    assert next_action(spec, TaskRunStatus(), CREATED, NOW) == RunAction(
        Next.DELAY, CREATED + timedelta(seconds=60)
    )
    queued = TaskRunStatus(phase=RunPhase.DELAYED)
    assert next_action(spec, queued, CREATED, NOW).next is Next.DELAY


def test_the_ttl_counts_from_the_end_of_the_delay() -> None:
    spec = _spec(delayUntil=_after(60), ttlSeconds=10)
    due = CREATED + timedelta(seconds=65)
    assert next_action(spec, TaskRunStatus(), CREATED, due) == RunAction(
        Next.START, CREATED + timedelta(seconds=70)
    )
    assert next_action(spec, TaskRunStatus(), CREATED, due + timedelta(seconds=5)) == RunAction(
        Next.EXPIRE
    )


@pytest.mark.parametrize("phase", [None, RunPhase.QUEUED])
def test_a_run_expires_once_its_ttl_passed_before_it_started(phase: RunPhase | None) -> None:
    status = TaskRunStatus(phase=phase)
    assert next_action(_spec(ttlSeconds=5), status, CREATED, NOW) == RunAction(Next.EXPIRE)
    assert next_action(_spec(ttlSeconds=6), status, CREATED, NOW) == RunAction(
        Next.START, CREATED + timedelta(seconds=6)
    )


def test_a_run_without_delay_or_ttl_may_start() -> None:
    action = next_action(_spec(), TaskRunStatus(), CREATED, NOW)
    assert action == RunAction(Next.START) and action.startable
