"""The `ScheduleTicker`'s doing, on an in-memory namespace (the Kubernetes boundary it
calls): what it does when a call fails, is refused, or finds what it needs missing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from podtask._contract.resources import format_timestamp
from podtask._contract.schedules import tick_run_name
from podtask_operator import schedule_ticker
from podtask_operator.kube import Refused, Transient
from podtask_operator.schedule_ticker import ScheduleTicker
from podtask_operator.schedule_ticks import INVALID_TASK, RUN_REFUSED, SCHEDULED
from tests.sdk.test_control_task_runs import TASK

TICK = datetime(2026, 5, 4, 9, 31, tzinfo=UTC)


class MemorySchedules:
    """Tasks, runs and schedule statuses of one namespace; `failures[call]` are raised by
    the next calls of `call`, one each."""

    namespace = "tasks"

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {TASK.task_id: {"spec": TASK.to_wire()}}
        self.runs: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, list[Exception]] = {}
        self.changed = asyncio.Event()

    def _fail(self, call: str) -> None:
        if self.failures.get(call):
            raise self.failures[call].pop(0)

    async def get_task(self, task_id: str) -> dict[str, Any] | None:
        self._fail("get_task")
        return self.tasks.get(task_id)

    async def create_run(self, body: dict[str, Any]) -> bool:
        self._fail("create_run")
        name = body["metadata"]["name"]
        if name in self.runs:
            return False
        self.runs[name] = body
        return True

    async def patch_schedule_status(self, name: str, status: dict[str, Any]) -> bool:
        self._fail("patch_schedule_status")
        self.statuses.setdefault(name, {}).update(status)
        self.changed.set()
        return True


def body(name: str = "nightly") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1, "creationTimestamp": "2026-05-01T00:00:00Z"},
        "spec": {"taskId": TASK.task_id, "cron": "* * * * *"},
        "status": {"observedGeneration": 1, "nextTimestamp": format_timestamp(TICK)},
    }


async def until(check: Callable[[], bool], api: MemorySchedules) -> None:
    async with asyncio.timeout(30):
        while not check():
            api.changed.clear()
            await api.changed.wait()


def ready_reason(api: MemorySchedules, name: str = "nightly") -> str | None:
    conditions = api.statuses.get(name, {}).get("conditions") or []
    return conditions[0]["reason"] if conditions else None


def run_ticker(scenario: Callable[[MemorySchedules, ScheduleTicker], Any]) -> MemorySchedules:
    async def main() -> MemorySchedules:
        api = MemorySchedules()
        ticker = ScheduleTicker(api, clock=lambda: TICK)
        try:
            await scenario(api, ticker)
        finally:
            await ticker.close()
        return api

    return asyncio.run(main())


def test_a_failing_call_is_tried_again_and_the_tick_runs_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schedule_ticker, "FIRST_RETRY_SECONDS", 0.01)

    async def scenario(api: MemorySchedules, ticker: ScheduleTicker) -> None:
        api.failures = {
            "create_run": [Transient(503, "ServiceUnavailable", "etcd")],
            "patch_schedule_status": [Transient(None, "ConnectionError", "refused")],
        }
        ticker.schedule_changed("nightly", body())
        await until(lambda: "lastRunId" in api.statuses.get("nightly", {}), api)

    api = run_ticker(scenario)
    assert list(api.runs) == [tick_run_name("nightly", TICK)]
    assert api.statuses["nightly"]["lastTimestamp"] == "2026-05-04T09:31:00Z"
    assert ready_reason(api) == SCHEDULED


def test_a_refused_run_and_a_malformed_task_pass_their_tick_and_say_why() -> None:
    async def scenario(api: MemorySchedules, ticker: ScheduleTicker) -> None:
        api.tasks["broken"] = {"spec": {"taskId": "broken"}}
        api.failures = {"create_run": [Refused(422, "Invalid", "spec.payload: too large")]}
        ticker.schedule_changed("refused", body("refused"))
        broken = body("broken")
        broken["spec"]["taskId"] = "broken"
        await until(lambda: ready_reason(api, "refused") is not None, api)
        ticker.schedule_changed("broken", broken)
        await until(lambda: ready_reason(api, "broken") is not None, api)

    api = run_ticker(scenario)
    assert ready_reason(api, "refused") == RUN_REFUSED
    assert "too large" in api.statuses["refused"]["conditions"][0]["message"]
    assert ready_reason(api, "broken") == INVALID_TASK
    for name in ("refused", "broken"):
        assert api.statuses[name]["nextTimestamp"] == "2026-05-04T09:32:00Z"
        assert "lastRunId" not in api.statuses[name]
    assert api.runs == {}


def test_a_deleted_schedule_is_no_longer_followed() -> None:
    async def scenario(api: MemorySchedules, ticker: ScheduleTicker) -> None:
        ticker.schedule_changed("nightly", body())
        ticker.schedule_changed("other", body("other"))
        await until(lambda: len(api.statuses) == 2, api)
        ticker.schedule_changed("nightly", None)
        ticker.schedule_changed("never-seen", None)
        assert ticker.followed == ["other"]

    run_ticker(scenario)
