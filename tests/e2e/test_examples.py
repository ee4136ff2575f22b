"""Every example in examples/ runs to its documented end through `podtask dev`."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from podtask._contract.resources import TaskScheduleSpec
from podtask._contract.schedules import MAX_UPCOMING, CronSchedule, scheduled_payload
from podtask_devcluster.quantities import parse_quantity
from tests.e2e.conftest import ROOT, Stack, at, wait_until


def test_retry_example_fails_twice_then_succeeds(stack: Stack) -> None:
    run = stack.wait_for(stack.trigger("retry-example", {}))
    assert run["status"] == "Completed", run
    assert run["output"] == {"succeededOnAttempt": 3}
    assert [a["reason"] for a in run["attempts"]] == ["Error", "Error", "Completed"]
    assert run["attempts"][0]["error"]["message"] == "attempt 1 fails on purpose"
    # randomize=False: the gaps are exactly min_timeout * factor^(n-1), 200 ms then 400 ms.
    attempts = run["attempts"]
    for n, expected in ((0, 0.2), (1, 0.4)):
        gap = (at(attempts[n + 1]["startedAt"]) - at(attempts[n]["finishedAt"])).total_seconds()
        assert expected <= gap < expected + 1.0, (n, gap)


def test_one_at_a_time_runs_share_one_queue(stack: Stack) -> None:
    ids = [stack.trigger("one-at-a-time", {"item": i, "seconds": 0.1}) for i in range(3)]
    ids.append(stack.trigger("one-at-a-time-report", {"item": "done"}))
    runs = [stack.wait_for(run_id) for run_id in ids]
    assert [r["status"] for r in runs] == ["Completed"] * 4
    assert {r["queue"] for r in runs} == {"one-at-a-time"}
    assert runs[0]["output"] == {"item": 0, "queue": "one-at-a-time"}


def test_heavy_task_runs_on_its_large_machine(stack: Stack) -> None:
    run_id = stack.trigger("heavy-task", {"limit": 200_000})
    pod = wait_until(lambda: _existing_pod(stack, f"{run_id}-1"), timeout=60)
    resources = pod["spec"]["containers"][0]["resources"]
    # As quantities: a real apiserver stores them canonical ("4", "8Gi").
    assert _amounts(resources["limits"]) == _amounts({"cpu": "4", "memory": "8Gi"})
    assert _amounts(resources["requests"]) == _amounts({"cpu": "3", "memory": "8Gi"})
    if not stack.node_fits(resources["requests"]):
        # A real scheduler on a node smaller than the machine: the pod waits, and says why.
        scheduled = wait_until(lambda: _condition(stack.pod(f"{run_id}-1"), "PodScheduled"), 30)
        assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
        assert "Insufficient cpu" in scheduled["message"], scheduled
        stack.http.post(f"/api/v1/runs/{run_id}/cancel").raise_for_status()
        assert stack.wait_for(run_id)["status"] == "Canceled"
        return
    run = stack.wait_for(run_id)
    assert run["status"] == "Completed", run
    assert run["machine"] == "large-1x"
    assert run["output"]["machine"] == "large-1x"
    assert run["output"]["cpu"] == 4
    assert run["output"]["memoryGb"] == 8
    assert run["output"]["largest"] == 199999


def _amounts(resources: dict[str, str]) -> dict[str, Decimal]:
    return {name: parse_quantity(value) for name, value in resources.items()}


def _existing_pod(stack: Stack, name: str) -> dict[str, Any] | None:
    try:
        return stack.pod(name)
    except subprocess.CalledProcessError:
        return None


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind and c.get("reason")), None)


def test_lifecycle_hooks_run_in_order_around_run(stack: Stack) -> None:
    run = stack.wait_for(stack.trigger("lifecycle-hooks", {"name": "hooks", "excited": True}))
    assert run["status"] == "Completed", run
    assert run["output"] == {
        "greeting": "hello hooks!",
        "connection": "db://example",
        "wrappedBy": "timed",
    }
    logs = subprocess.run(
        ["kubectl", "logs", f"{run['id']}-1"],
        env=stack.kube_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    order = [line.split(":")[0] for line in logs.splitlines() if not line.startswith("[")]
    assert order == [
        "on_start",
        "init",
        "middleware",
        "run",
        "middleware",
        "on_success",
        "on_complete",
        "cleanup",
    ], logs


def test_an_invalid_payload_fails_at_once_without_retrying(stack: Stack) -> None:
    run = stack.wait_for(stack.trigger("lifecycle-hooks", {"name": 42}))
    assert run["status"] == "Failed"
    assert run["error"]["type"] == "PayloadValidationError"
    assert "name" in run["error"]["message"]
    assert len(run["attempts"]) == 1


def test_parent_waits_for_its_children_and_returns_their_output(stack: Stack) -> None:
    run = stack.wait_for(stack.trigger("parent-task", {"n": 21}), timeout=90)
    assert run["status"] == "Completed", run
    output = run["output"]
    assert output["child"] == {"doubled": 42, "parentRunId": run["id"]}
    assert output["batch"] == [0, 2, 4]
    child = stack.run(output["childRunId"])
    assert child["parentRunId"] == run["id"]
    # Its four children, listed by its id (what the dashboard's run page shows).
    listed = stack.http.get("/api/v1/runs", params={"parentRunId": run["id"]}).json()["data"]
    assert len(listed) == 4 and output["childRunId"] in {c["id"] for c in listed}


def test_an_order_waits_on_its_charge_in_their_queue_of_one(stack: Stack) -> None:
    run = stack.wait_for(stack.trigger("process-order", {"order": "o-1", "amount": 7}), 120)
    assert run["status"] == "Completed", run
    assert run["output"]["charge"] == {"order": "o-1", "charged": 7}
    assert stack.run(run["output"]["chargeRunId"])["parentRunId"] == run["id"]
    assert run["attempts"][0]["waitedSeconds"] >= 1


def test_the_weekly_report_runs_on_a_scheduled_payload(stack: Stack) -> None:
    # The payload a tick of its schedule gives it, triggered by hand.
    spec = TaskScheduleSpec(task_id="weekly-report", cron="0 9 * * 1", timezone="Europe/Paris")
    tick = datetime(2026, 3, 30, 7, tzinfo=UTC)  # Monday 09:00 CEST
    upcoming = CronSchedule(spec.cron, spec.timezone).ticks_after(tick, MAX_UPCOMING)
    last = datetime(2026, 3, 23, 8, tzinfo=UTC)  # Monday 09:00 CET, before the change
    payload = scheduled_payload("weekly-report", spec, tick, last, upcoming)
    run = stack.wait_for(stack.trigger("weekly-report", payload))
    assert run["status"] == "Completed", run
    assert run["output"] == {
        "from": "2026-03-23T08:00:00Z",
        "to": "2026-03-30T07:00:00Z",
        "schedule": "weekly-report",
        "nextReport": "2026-04-06T07:00:00Z",
    }


def test_podtask_index_lists_every_example() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "podtask._cli.cli", "index", str(ROOT / "examples")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    manifest = json.loads(done.stdout)
    tasks = {t["id"]: t for t in manifest["tasks"]}
    assert set(tasks) == {
        "hello-world",
        "retry-example",
        "one-at-a-time",
        "one-at-a-time-report",
        "heavy-task",
        "lifecycle-hooks",
        "parent-task",
        "child-task",
        "out-of-memory",
        "process-order",
        "charge-card",
        "report-progress",
        "weekly-report",
    }
    assert tasks["heavy-task"]["machine"] == "large-1x"
    assert tasks["one-at-a-time"]["queue"] == {"name": "one-at-a-time", "concurrencyLimit": 1}
    assert tasks["retry-example"]["retry"]["maxAttempts"] == 5
    assert {"name": "one-at-a-time", "concurrencyLimit": 1} in manifest["queues"]
    assert tasks["weekly-report"]["schedule"] == {"cron": "0 9 * * 1", "timezone": "Europe/Paris"}
    assert tasks["hello-world"]["schedule"] is None


def test_out_of_memory_retries_on_the_bigger_machine(stack: Stack) -> None:
    run = stack.wait_for(stack.trigger("out-of-memory", {"megabytes": 700}), timeout=90)
    assert run["status"] == "Completed", run
    first, second = run["attempts"]
    assert (first["machine"], first["reason"], first["exitCode"]) == ("small-1x", "OOMKilled", 137)
    assert (second["machine"], second["reason"]) == ("medium-1x", "Completed")
    assert run["output"] == {"allocatedMb": 700, "machine": "medium-1x", "attempt": 2}
    limits = {}
    for number, attempt in enumerate(run["attempts"], start=1):
        pod = stack.pod(f"{run['id']}-{number}")
        limits[number] = _amounts(pod["spec"]["containers"][0]["resources"]["limits"])
        assert pod["metadata"]["labels"]["podtask.dev/machine"] == attempt["machine"]
    assert limits == {
        1: _amounts({"cpu": "500m", "memory": "512Mi"}),
        2: _amounts({"cpu": "1", "memory": "2Gi"}),
    }
