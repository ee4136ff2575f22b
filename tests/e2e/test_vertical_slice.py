"""Trigger over HTTP → TaskRun → operator → pod → runner → output, through `podtask dev`."""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import ROOT, TASK_MODULES, Stack, start_stack


def kubectl(stack: Stack, *args: str) -> str:
    done = subprocess.run(
        ["kubectl", *args], env=stack.kube_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_hello_world_completes_with_its_output(stack: Stack) -> None:
    run_id = stack.trigger("hello-world", {"name": "world"})
    run = stack.wait_for(run_id)
    assert run["status"] == "Completed", run
    assert run["output"] == {"message": "hello world"}
    assert run["attempt"] == 1
    assert run["attempts"][0]["pod"] == f"{run_id}-1"
    # Completed by its report of success, in the write that recorded it: before its pod
    # exited, so no exit code (`podtask._contract.run_endings.completed`).
    assert run["attempts"][0]["reason"] == "Completed"
    assert run["attempts"][0]["exitCode"] is None


def test_an_output_keeps_every_null_it_holds(stack: Stack) -> None:
    # A null inside an object is a value, not "delete this key" as in a merge patch.
    payload = {"a": None, "b": [None, {"c": None}], "d": {"e": None, "f": 1}}
    run = stack.wait_for(stack.trigger("returns-its-payload", payload))
    assert run["status"] == "Completed", run
    assert run["output"] == payload


def test_the_readme_curl_works_without_a_content_type(stack: Stack) -> None:
    # `curl -d '{...}'` sends its JSON as application/x-www-form-urlencoded.
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            f"{stack.dev.api_url}/api/v1/tasks/hello-world/trigger",
            "-H",
            f"Authorization: Bearer {stack.dev.api_key}",
            "-d",
            '{"payload":{"name":"curl"}}',
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    run = stack.wait_for(json.loads(done.stdout)["id"])
    assert run["output"] == {"message": "hello curl"}


def test_kubectl_shows_runs_pods_and_logs(stack: Stack) -> None:
    run_id = stack.trigger("hello-world", {"name": "kubectl"})
    stack.wait_for(run_id)

    table = kubectl(stack, "get", "taskruns")
    header = table.splitlines()[0].split()
    assert header[:8] == [
        "NAME",
        "TASK",
        "STATUS",
        "ATTEMPT",
        "QUEUE",
        "MACHINE",
        "DURATION",
        "AGE",
    ]
    row = next(line.split() for line in table.splitlines() if line.startswith(run_id))
    assert row[1:6] == ["hello-world", "Completed", "1", "hello-world", "small-1x"]

    as_yaml = kubectl(stack, "get", "taskrun", run_id, "-o", "yaml")
    assert "taskId: hello-world" in as_yaml
    assert "phase: Completed" in as_yaml
    assert "message: hello kubectl" in as_yaml

    pods = kubectl(stack, "get", "pods")
    assert f"{run_id}-1" in pods
    assert "Completed" in next(line for line in pods.splitlines() if line.startswith(f"{run_id}-1"))

    logs = kubectl(stack, "logs", f"{run_id}-1")
    assert f"Hello, kubectl! (run {run_id}, attempt 1)" in logs


def test_kubectl_watch_streams_status_changes(stack: Stack) -> None:
    watch = subprocess.Popen(
        ["kubectl", "get", "taskruns", "-w", "--output-watch-events"],
        env=stack.kube_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)  # let the watch's initial list arrive before the new run
        run_id = stack.trigger("hello-world", {"name": "watch"})
        stack.wait_for(run_id)
        time.sleep(1.0)
    finally:
        watch.terminate()
    out, _ = watch.communicate(timeout=10)
    statuses = [line.split()[3] for line in out.splitlines() if run_id in line]
    assert "Executing" in statuses, out
    assert statuses[-1] == "Completed", out


def test_a_raising_task_fails_with_type_message_and_traceback(stack: Stack) -> None:
    run = stack.wait_for(stack.trigger("always-fails", {}))
    assert run["status"] == "Failed"
    error = run["error"]
    assert error["type"] == "ValueError"
    assert error["message"] == "kaboom on attempt 1"
    assert "Traceback" in error["stack"] and "misbehaving.py" in error["stack"]


def test_output_that_is_not_json_fails_and_says_so(stack: Stack) -> None:
    run = stack.wait_for(stack.trigger("returns-a-set", {}))
    assert run["status"] == "Failed"
    assert "JSON" in run["error"]["message"]
    assert "returns-a-set" in run["error"]["message"]


def test_unknown_task_and_missing_key_are_clear_client_errors(stack: Stack) -> None:
    response = stack.http.post("/api/v1/tasks/no-such-task/trigger", json={"payload": {}})
    assert response.status_code == 404
    assert "no-such-task" in response.json()["error"]["message"]
    anonymous = httpx.post(f"{stack.dev.api_url}/api/v1/tasks/hello-world/trigger", json={})
    assert anonymous.status_code == 401


def test_a_module_that_fails_to_import_names_the_module_and_cause(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "podtask._cli.cli",
            "dev",
            str(TASK_MODULES / "broken_import.py"),
            "--state-dir",
            str(tmp_path / ".podtask"),
            "--port",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "broken_import.py" in done.stderr
    assert "podtask_module_that_does_not_exist" in done.stderr


def test_runs_survive_a_restart_of_podtask_dev(tmp_path: Path) -> None:
    state = tmp_path / ".podtask"
    first = start_stack(state)
    try:
        stack = Stack(first)
        run_id = stack.trigger("hello-world", {"name": "before restart"})
        stack.wait_for(run_id)
    finally:
        assert first.stop() == 0
    second = start_stack(state)
    try:
        stack = Stack(second)
        assert second.api_key == first.api_key
        run = stack.run(run_id)
        assert run["status"] == "Completed"
        assert run["output"] == {"message": "hello before restart"}
        assert run_id in kubectl(stack, "get", "taskruns")
        after = stack.wait_for(stack.trigger("hello-world", {"name": "after restart"}))
        assert after["status"] == "Completed"
    finally:
        second.stop()
