"""The `ScheduleTicker` against the embedded cluster: real TaskSchedules, Tasks and TaskRuns
through the operator's `Cluster`. Its clock runs ahead of the real one, set 1.5 s before a
minute's tick, so that a tick comes without waiting for the minute; the test stands in for
the watch (`schedule_changed` with what it reads)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from podtask._contract.resources import format_timestamp
from podtask._contract.schedules import tick_run_name
from podtask._contract.wire import API_VERSION, GROUP, LABEL_SCHEDULE, TASK_SCHEDULES, VERSION
from podtask_operator.cluster import Cluster
from podtask_operator.schedule_ticker import ScheduleTicker
from podtask_operator.schedule_ticks import INACTIVE, TASK_NOT_DEPLOYED, MissedTicks
from tests.embedded_kube import EmbeddedKube, KubeNamespace
from tests.task_specs import HELLO


class Schedules:
    def __init__(self, kube: EmbeddedKube, namespace: KubeNamespace) -> None:
        self.namespace = namespace.name
        self.objects = client.CustomObjectsApi(kube.api)

    def create(self, name: str, task_id: str, next_tick: datetime) -> None:
        """A schedule as an earlier operator left it: waiting for `next_tick`."""
        body = {
            "apiVersion": API_VERSION,
            "kind": "TaskSchedule",
            "metadata": {"name": name},
            "spec": {"taskId": task_id, "cron": "* * * * *"},
        }
        self.objects.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, TASK_SCHEDULES, body
        )
        status = {"observedGeneration": 1, "nextTimestamp": format_timestamp(next_tick)}
        self.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, TASK_SCHEDULES, name, {"status": status}
        )

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, TASK_SCHEDULES, name
        )
        return found

    def set_active(self, name: str, active: bool) -> None:
        self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, TASK_SCHEDULES, name, {"spec": {"active": active}}
        )

    def runs(self) -> list[dict[str, Any]]:
        listed = self.objects.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "taskruns"
        )
        return list(listed["items"])


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_ticks_trigger_their_runs_once_and_the_status_follows(
    embedded_kube: EmbeddedKube, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="podtask_operator.schedule_ticker")
    namespace = embedded_kube.new_namespace("schedules")
    namespace.deploy_task(HELLO)
    schedules = Schedules(embedded_kube, namespace)
    real_now = datetime.now(UTC)
    tick = real_now.replace(second=0, microsecond=0) + timedelta(minutes=10)
    # The ticker's clock: 1.5 s before `tick` now, and running.
    ahead = tick - timedelta(seconds=1.5) - real_now

    def clock() -> datetime:
        return datetime.now(UTC) + ahead

    schedules.create("minutes", HELLO.task_id, tick)
    schedules.create("orphan", "not-deployed", tick)

    async def scenario() -> None:
        cluster = Cluster(embedded_kube.login, namespace.name)
        ticker = ScheduleTicker(cluster, MissedTicks.RUN_LATEST, clock=clock)
        second = ScheduleTicker(cluster, MissedTicks.RUN_LATEST, clock=clock)
        try:
            stale = schedules.get("minutes")
            for name in ("minutes", "orphan"):
                ticker.schedule_changed(name, schedules.get(name))

            async def ticked(name: str) -> dict[str, Any] | None:
                found = await asyncio.to_thread(schedules.get, name)
                status = found.get("status") or {}
                return found if status.get("nextTimestamp") != format_timestamp(tick) else None

            minutes = await eventually(lambda: ticked("minutes"), 30, "the tick of 'minutes'")
            run_id = tick_run_name("minutes", tick)
            assert minutes["status"]["lastTimestamp"] == format_timestamp(tick)
            assert minutes["status"]["lastRunId"] == run_id
            assert minutes["status"]["nextTimestamp"] == format_timestamp(
                tick + timedelta(minutes=1)
            )
            assert minutes["status"]["conditions"][0]["status"] == "True"
            (run,) = await asyncio.to_thread(schedules.runs)
            assert run["metadata"]["name"] == run_id
            assert run["metadata"]["labels"][LABEL_SCHEDULE] == "minutes"
            assert run["spec"]["tags"] == ["minutes"]
            assert run["spec"]["payload"]["timestamp"] == format_timestamp(tick)

            orphan = await eventually(lambda: ticked("orphan"), 30, "the tick of 'orphan'")
            (ready,) = orphan["status"]["conditions"]
            assert (ready["status"], ready["reason"]) == ("False", TASK_NOT_DEPLOYED)
            assert "lastRunId" not in orphan["status"]

            # Another operator that read the schedule before the tick was written (a leader
            # killed after creating the run): the same run, an AlreadyExists, nothing more.
            second.schedule_changed("minutes", stale)

            async def found_triggered() -> bool:
                return f"had triggered {run_id}" in caplog.text

            await eventually(found_triggered, 30, "the second operator's look")
            assert [r["metadata"]["name"] for r in await asyncio.to_thread(schedules.runs)] == [
                run_id
            ]

            # Deactivated: no next tick, and says why.
            await asyncio.to_thread(schedules.set_active, "minutes", False)
            ticker.schedule_changed("minutes", await asyncio.to_thread(schedules.get, "minutes"))

            async def inactive() -> dict[str, Any] | None:
                status = (await asyncio.to_thread(schedules.get, "minutes")).get("status") or {}
                reasons = [c["reason"] for c in status.get("conditions") or []]
                return status if reasons == [INACTIVE] else None

            status = await eventually(inactive, 30, "'minutes' inactive")
            assert "nextTimestamp" not in status and status["observedGeneration"] == 2
            assert status["lastRunId"] == run_id

            ticker.schedule_changed("minutes", None)
            assert ticker.followed == ["orphan"]
        finally:
            await ticker.close()
            await second.close()
            await cluster.close()

    asyncio.run(scenario())
