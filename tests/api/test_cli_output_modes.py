"""What `podtask` prints, as real subprocesses against the API served by uvicorn over the
embedded cluster: `-o json` prints the API's own objects alone on stdout, `runs get` lists
every attempt, `runs replay --wait` follows the new run, an idempotent trigger says it found
a run, and no command prints a traceback when its reader closes stdout (`| head -1`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_fixtures import API_KEY
from cli_processes import play_operator, podtask
from kubernetes import client as kube_client

from podtask._cli.cli_parser import parser
from podtask._contract.wire import API_VERSION, GROUP, VERSION
from tests.embedded_kube import EmbeddedKube, KubeNamespace
from tests.sdk.test_cli_flags import commands

SIGPIPE_EXIT = 128 + signal.SIGPIPE  # what a shell reports when kubectl meets a closed pipe


@pytest.fixture
def api(api_env: dict[str, str]) -> Iterator[httpx.Client]:
    """The same API, read directly: what `-o json` must print."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=api_env["PODTASK_API_URL"], headers=headers) as client:
        yield client


def json_of(*args: str, env: dict[str, str]) -> Any:
    done = podtask(*args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # nothing else on stdout


def create_queue(kube: EmbeddedKube, namespace: KubeNamespace, name: str) -> None:
    queue = {
        "apiVersion": API_VERSION,
        "kind": "TaskQueue",
        "metadata": {"name": name},
        "spec": {"concurrencyLimit": 2, "paused": False},
    }
    objects = kube_client.CustomObjectsApi(kube.api)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace.name, "taskqueues", queue)


def test_output_json_prints_the_apis_objects(
    api_env: dict[str, str],
    api: httpx.Client,
    namespace: KubeNamespace,
    embedded_kube: EmbeddedKube,
) -> None:
    triggered = json_of(
        "trigger", "hello-world", "--idempotency-key", "k-1", "-o", "json", env=api_env
    )
    run_id = triggered["id"]
    assert triggered == {"id": run_id, "isCached": False}
    again = podtask("trigger", "hello-world", "--idempotency-key", "k-1", "--json", env=api_env)
    assert json.loads(again.stdout) == {"id": run_id, "isCached": True}
    assert again.stderr == f"existing run {run_id} (same idempotency key)\n"

    assert (
        json_of("runs", "get", run_id, "-o", "json", env=api_env)
        == api.get(f"/api/v1/runs/{run_id}").json()
    )
    listed = json_of("runs", "list", "--output", "json", env=api_env)
    assert listed == {"data": api.get("/api/v1/runs").json()["data"]}
    assert [run["id"] for run in listed["data"]] == [run_id]

    create_queue(embedded_kube, namespace, "greetings")
    paused = json_of("queues", "pause", "greetings", "-o", "json", env=api_env)
    assert paused == api.get("/api/v1/queues/greetings").json() and paused["paused"] is True
    limited = json_of("queues", "limit", "greetings", "5", "-o", "json", env=api_env)
    assert limited["concurrencyLimit"] == 5
    assert json_of("queues", "-o", "json", env=api_env) == api.get("/api/v1/queues").json()
    assert json_of("queues", "list", "--json", env=api_env)["data"] == [limited]

    replayed = json_of("runs", "replay", run_id, "-o", "json", env=api_env)
    assert replayed == {"id": replayed["id"], "isCached": False, "taskId": "hello-world"}
    canceled = json_of("runs", "cancel", run_id, "-o", "json", env=api_env)
    assert canceled["id"] == run_id and canceled["cancelRequestedAt"] is not None

    # Errors stay on stderr, with the same exit codes, in either mode.
    missing = podtask("runs", "get", "run-missing", "-o", "json", env=api_env)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert "there is no run 'run-missing'" in missing.stderr


def test_keys_list_and_index_as_json_and_text(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    where = ("--kubeconfig", str(embedded_kube.kubeconfig), "--namespace", namespace.name)
    assert podtask("keys", "create", "--name", "ci", *where, env={}).returncode == 0
    # Names and access, as the table shows them: a key's digest identifies it, so never.
    keys = json_of("keys", "list", *where, "-o", "json", env={})
    assert keys == {"data": [{"name": "ci", "access": "write"}]}

    manifest = json_of("index", "examples/", env={})  # index prints JSON by default
    assert json_of("index", "examples/", "-o", "json", env={}) == manifest
    text = podtask("index", "examples/", "-o", "text", env={})
    header, *rows = text.stdout.splitlines()
    assert header.split() == ["TASK", "MODULE", "QUEUE", "MACHINE", "SCHEDULE"]
    assert [row.split()[0] for row in rows] == [task["id"] for task in manifest["tasks"]]


def test_runs_get_lists_every_attempt(api_env: dict[str, str], namespace: KubeNamespace) -> None:
    run_id = podtask("trigger", "hello-world", env=api_env).stdout.strip()
    attempt = {"pod": f"{run_id}-1", "startedAt": "2024-05-01T12:00:00Z"}
    namespace.set_run_status(
        run_id,
        {
            "phase": "Executing",
            "attempt": 2,
            "machine": "small-2x",
            "attempts": [
                {
                    **attempt,
                    "number": 1,
                    "machine": "small-1x",
                    "finishedAt": "2024-05-01T12:00:03Z",
                    "exitCode": 137,
                    "reason": "OOMKilled",
                    "error": {"type": "OutOfMemoryError", "message": "killed"},
                },
                {**attempt, "number": 2, "pod": f"{run_id}-2", "machine": "small-2x"},
            ],
        },
    )
    details = podtask("runs", "get", run_id, env=api_env)
    assert details.returncode == 0, details.stderr
    table = details.stdout.split("\nAttempts:\n", 1)[1].split("\n\n", 1)[0]
    header, first, second = (re.split(" {2,}", line) for line in table.splitlines())
    assert header == [
        "ATTEMPT", "MACHINE", "STARTED", "FINISHED", "DURATION", "EXIT", "REASON", "ERROR"
    ]  # fmt: skip
    assert first[:2] == ["1", "small-1x"] and first[4:] == [
        "3.0s", "137", "OOMKilled", "OutOfMemoryError: killed"
    ]  # fmt: skip
    assert second[:2] == ["2", "small-2x"] and second[3] == "-" and second[4].endswith("…")


def test_runs_replay_wait_follows_the_new_run_to_its_output(
    api_env: dict[str, str], namespace: KubeNamespace
) -> None:
    run_id = podtask("trigger", "hello-world", env=api_env).stdout.strip()
    completed = {"phase": "Completed", "output": {"message": "again"}}
    operator = play_operator(namespace, completed, besides=frozenset({run_id}))
    done = podtask("runs", "replay", run_id, "--wait", env=api_env)
    operator.join()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"message": "again"}
    [new_id] = set(namespace.run_names()) - {run_id}
    lines = done.stderr.splitlines()
    assert lines[0] == f"Replayed {run_id} as {new_id}" and lines[-1] == f"{new_id}: Completed"

    # Waiting with -o json prints the finished run; a run that failed exits 1, as trigger's.
    error = {"type": "ValueError", "message": "bad"}
    known = frozenset(namespace.run_names())
    operator = play_operator(namespace, {"phase": "Failed", "error": error}, besides=known)
    failed = podtask("runs", "replay", run_id, "--wait", "-o", "json", env=api_env)
    operator.join()
    assert failed.returncode == 1
    view = json.loads(failed.stdout)
    assert (view["status"], view["error"]["message"], view["replayOf"]) == ("Failed", "bad", run_id)


def closed_pipe_run(*args: str, env: dict[str, str], stderr_too: bool = False) -> tuple[int, str]:
    """`podtask ARGS | head -0`: stdout is a pipe whose reader has gone. Its exit code and
    what it wrote on stderr."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = podtask(
            *args, env=env, stdout=writer, stderr=writer if stderr_too else subprocess.PIPE
        )
    finally:
        os.close(writer)
    return done.returncode, done.stderr or ""


def test_no_command_prints_a_traceback_when_its_reader_closes_stdout(
    api_env: dict[str, str], namespace: KubeNamespace, embedded_kube: EmbeddedKube
) -> None:
    run_id = podtask("trigger", "hello-world", env=api_env).stdout.strip()
    create_queue(embedded_kube, namespace, "greetings")
    where = ("--kubeconfig", str(embedded_kube.kubeconfig), "--namespace", namespace.name)
    schedule = ("schedules", "create", "hello-world", "--cron", "@daily", "--deduplication-key")
    schedule_id = podtask(*schedule, "pipe", env=api_env).stdout.strip()
    # Every command that writes to stdout, in both modes where it has two; `runs logs` and
    # `dev` write as they go, a case the mechanism covers (and `dev` starts a whole stack).
    command_lines = [
        ["--version"],
        ["--help"],
        ["runs", "--help"],
        ["index", "examples/"],
        ["index", "examples/", "-o", "text"],
        ["trigger", "hello-world"],
        ["trigger", "hello-world", "-o", "json"],
        ["runs", "list"],
        ["runs", "list", "-o", "json"],
        ["runs", "get", run_id],
        ["runs", "get", run_id, "-o", "json"],
        ["runs", "replay", run_id],
        ["runs", "cancel", run_id],
        ["queues"],
        ["queues", "list", "-o", "json"],
        ["queues", "pause", "greetings"],
        ["queues", "resume", "greetings"],
        ["queues", "limit", "greetings", "3"],
        ["keys", "create", "--name", "ci", *where],
        ["keys", "list", *where],
        ["keys", "revoke", "ci", *where],
        ["deploy", "--image", "tasks:1", "--module", "examples/"],
        [*schedule, "pipe"],
        [*schedule, "pipe", "-o", "json"],
        ["schedules", "list"],
        ["schedules", "list", "-o", "json"],
        ["schedules", "get", schedule_id],
        ["schedules", "get", schedule_id, "-o", "json"],
        ["schedules", "update", schedule_id, "--cron", "@hourly"],
        ["schedules", "deactivate", schedule_id],
        ["schedules", "activate", schedule_id],
        ["schedules", "delete", schedule_id],
    ]
    groups = ("runs", "queues", "keys", "schedules")
    covered = {" ".join(line[:2]) if line[0] in groups else line[0] for line in command_lines}
    every = {" ".join(words) for words, _ in commands(parser())} - set(groups)
    assert every - covered == {"dev", "runs logs"}
    # As a user's shell runs it: stdout buffered, written out when the command ends.
    buffered = {**api_env, "PYTHONUNBUFFERED": ""}
    for line in command_lines:
        code, stderr = closed_pipe_run(*line, env=buffered)
        assert (code, stderr) == (SIGPIPE_EXIT, ""), line
    # Unbuffered, each print meets the closed pipe at once; argparse ignores it when it
    # prints --help itself (exit 0), the commands exit as above.
    unbuffered = {**api_env, "PYTHONUNBUFFERED": "1"}
    assert closed_pipe_run("runs", "list", env=unbuffered) == (SIGPIPE_EXIT, "")
    assert closed_pipe_run("index", "examples/", env=unbuffered) == (SIGPIPE_EXIT, "")
    assert closed_pipe_run("--help", env=unbuffered) == (0, "")
    # Progress on stderr, into the same closed pipe (`2>&1 | head -0`): quiet too.
    code, _ = closed_pipe_run("runs", "get", run_id, env=unbuffered, stderr_too=True)
    assert code == SIGPIPE_EXIT
