"""Acceptance 1 of issue 15: a task declared with `schedule="* * * * *"` runs once a minute;
operators SIGKILLed across its ticks never run a tick twice nor skip one that came while an
operator was up (embedded cluster), and two operators under leader election trigger each
tick once, the standby taking over from a leader killed at a tick (real control plane).

Minute ticks are slow: each test covers several, and waits on the runs themselves, with
deadlines of minutes. The stack registers the task module as `podtask dev` does, which
makes its TaskSchedule; its operator restarts only on a lost Lease, so a test that kills it
starts it again, as its Deployment would.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from podtask._cli.dev import free_port
from podtask._contract.resources import parse_timestamp
from podtask._contract.schedules import format_tick, tick_run_name
from podtask._contract.wire import LABEL_SCHEDULE
from tests.clusters import CLUSTERS
from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import TASK_MODULES, wait_until

SCHEDULE = "every-minute"  # a declared schedule is named after its task
MINUTE = timedelta(minutes=1)
# The first tick comes within a minute of the start; each later one a minute after the last.
TICK_DEADLINE = 180
# Each operator's health endpoint, which says whether it leads.
HEALTH_PORTS = {"operator": free_port(), "operator-b": free_port()}


def _only(kind: str) -> list[str]:
    return [kind] if kind in CLUSTERS else []


@pytest.fixture
def scheduled(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ComposedStack]:
    """The stack of `scheduled.py` on the test's cluster; its operator's health endpoint on
    `HEALTH_PORTS["operator"]`."""
    stack = ComposedStack(
        tmp_path,
        [str(TASK_MODULES / "scheduled.py")],
        operator_env={"PODTASK_HEALTH_PORT": str(HEALTH_PORTS["operator"])},
        cluster_kind=request.node.callspec.params["kind"],
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def scheduled_runs(stack: ComposedStack) -> list[dict[str, Any]]:
    return [
        run
        for run in stack.runs()
        if (run["metadata"].get("labels") or {}).get(LABEL_SCHEDULE) == SCHEDULE
    ]


def tick_of(run: dict[str, Any]) -> datetime:
    tick = parse_timestamp(run["spec"]["payload"]["timestamp"])
    assert tick is not None, run["spec"]["payload"]
    return tick


def wait_for_tick_after(stack: ComposedStack, after: datetime | None) -> datetime:
    """The earliest tick later than `after` whose run exists, once one does."""

    def ticked() -> datetime | None:
        stack.assert_running()
        ticks = [t for t in map(tick_of, scheduled_runs(stack)) if after is None or t > after]
        return min(ticks, default=None)

    try:
        found: datetime = wait_until(ticked, timeout=TICK_DEADLINE, interval=0.2)
    except AssertionError:
        raise AssertionError(f"no tick after {after}: {stack.log_tails()}") from None
    return found


def restart_operator(stack: ComposedStack) -> None:
    stack.kill_operator()
    stack.start_operator()


def assert_each_tick_ran_once(stack: ComposedStack, ticks: list[datetime]) -> None:
    """Every tick of `ticks` (consecutive minutes) triggered one run, which completed with
    the scheduled payload; no other run of the schedule is among them."""
    runs = scheduled_runs(stack)
    by_tick = Counter(format_tick(tick_of(run)) for run in runs)
    assert all(count == 1 for count in by_tick.values()), by_tick
    expected = {tick_run_name(SCHEDULE, tick): tick for tick in ticks}
    ended = stack.wait_all(list(expected), timeout=TICK_DEADLINE)
    previous: datetime | None = None
    for name, tick in expected.items():
        run = ended[name]
        payload = run["spec"]["payload"]
        assert payload == {
            "type": "DECLARATIVE",
            "scheduleId": SCHEDULE,
            "externalId": None,
            "timestamp": format_tick(tick),
            "lastTimestamp": format_tick(previous) if previous else None,
            "timezone": "UTC",
            "upcoming": [format_tick(tick + MINUTE * n) for n in range(1, 11)],
        }
        assert run["spec"]["tags"] == [SCHEDULE]
        assert run["metadata"]["labels"][LABEL_SCHEDULE] == SCHEDULE
        output = {"tick": format_tick(tick), "schedule": SCHEDULE, "tags": [SCHEDULE]}
        assert (run["status"]["phase"], run["status"].get("output")) == ("Completed", output)
        previous = tick


@pytest.mark.parametrize("kind", _only("embedded"))
def test_operators_killed_across_ticks_run_each_tick_once(
    scheduled: ComposedStack, kind: str
) -> None:
    first = wait_for_tick_after(scheduled, None)
    # Killed as soon as the first tick's run exists: its status may not be written yet, and
    # the next operator triggers that tick again, which finds its run.
    restart_operator(scheduled)
    second = wait_for_tick_after(scheduled, first)
    assert second == first + MINUTE
    # Killed two seconds before the third tick: that tick comes while no operator leads
    # (the next waits for the killed one's Lease to expire), and runs late.
    third = second + MINUTE
    time.sleep(max(0.0, (third - datetime.now(UTC)).total_seconds() - 2))
    restart_operator(scheduled)
    assert wait_for_tick_after(scheduled, second) == third

    assert_each_tick_ran_once(scheduled, [first, second, third])
    status = json.loads(scheduled.kubectl("get", "taskschedule", SCHEDULE, "-o", "json"))["status"]
    assert parse_timestamp(status["lastTimestamp"]) >= third  # type: ignore[operator]
    assert parse_timestamp(status["nextTimestamp"]) > third  # type: ignore[operator]


def role(port: int) -> str | None:
    """ "leader" or "standby", as the operator's health endpoint says."""
    try:
        return str(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["role"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


@pytest.mark.parametrize("kind", _only("real"))
def test_two_operators_trigger_each_tick_once(scheduled: ComposedStack, kind: str) -> None:
    standby_env = {"PODTASK_HEALTH_PORT": str(HEALTH_PORTS["operator-b"])}
    scheduled.start_replica("operator-b", standby_env)

    def roles() -> dict[str, str | None]:
        return {name: role(port) for name, port in HEALTH_PORTS.items()}

    wait_until(lambda: sorted(map(str, roles().values())) == ["leader", "standby"], timeout=60)
    first = wait_for_tick_after(scheduled, None)
    # The leader killed at the tick, maybe before it wrote the status: the standby takes
    # over and goes on from there. The killed one comes back once the other leads: started
    # at once, it could win the Lease as it expires as well as the standby could.
    leader = next(name for name, r in roles().items() if r == "leader")
    other = next(name for name in HEALTH_PORTS if name != leader)
    if leader == "operator":
        scheduled.kill_operator()
    else:
        scheduled.replicas["operator-b"].kill()
        scheduled.replicas["operator-b"].wait(timeout=30)
    wait_until(lambda: role(HEALTH_PORTS[other]) == "leader", timeout=60)
    if leader == "operator":
        scheduled.start_operator()
    else:
        scheduled.start_replica("operator-b", standby_env)
    second = wait_for_tick_after(scheduled, first)
    assert second == first + MINUTE
    assert_each_tick_ran_once(scheduled, [first, second])
    wait_until(lambda: roles() == {leader: "standby", other: "leader"}, timeout=60)
