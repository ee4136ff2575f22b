"""Every example in examples/ runs to its documented end through `podtask dev`."""

import json
import subprocess

from tests.e2e.conftest import Stack


def test_retry_example_fails_twice_then_succeeds(stack: Stack) -> None:
    run = stack.wait_for(stack.trigger("retry-example", {}))
    assert run["status"] == "Completed", run
    assert run["output"] == {"succeededOnAttempt": 3}
    assert [a["reason"] for a in run["attempts"]] == ["Error", "Error", "Completed"]
    assert run["attempts"][0]["error"]["message"] == "attempt 1 fails on purpose"


def test_one_at_a_time_runs_share_one_queue(stack: Stack) -> None:
    ids = [stack.trigger("one-at-a-time", {"item": i, "seconds": 0.1}) for i in range(3)]
    ids.append(stack.trigger("one-at-a-time-report", {"item": "done"}))
    runs = [stack.wait_for(run_id) for run_id in ids]
    assert [r["status"] for r in runs] == ["Completed"] * 4
    assert {r["queue"] for r in runs} == {"one-at-a-time"}
    assert runs[0]["output"] == {"item": 0, "queue": "one-at-a-time"}


def test_heavy_task_runs_on_its_large_machine(stack: Stack) -> None:
    run = stack.wait_for(stack.trigger("heavy-task", {"limit": 200_000}))
    assert run["status"] == "Completed", run
    assert run["machine"] == "large-1x"
    assert run["output"]["machine"] == "large-1x"
    assert run["output"]["cpu"] == 4
    assert run["output"]["memoryGb"] == 8
    assert run["output"]["largest"] == 199999
    pod = json.loads(
        subprocess.run(
            ["kubectl", "get", "pod", f"{run['id']}-1", "-o", "json"],
            env=stack.kube_env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "4000m", "memory": "8192Mi"}
    assert resources["requests"] == {"cpu": "3000m", "memory": "8192Mi"}
