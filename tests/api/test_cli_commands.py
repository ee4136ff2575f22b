"""`podtask trigger`, `runs list|get|logs`, `queues` and `keys` as real subprocesses, against
the API served by uvicorn over the embedded cluster (`keys` against the cluster itself).

The test plays the operator where a command waits: it writes the run's status as the
operator would.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
from api_fixtures import assert_error, bearer, served, settings_for
from cli_processes import play_operator, podtask
from kubernetes import client as kube_client

from podtask._contract.wire import API_VERSION, GROUP, LABEL_ATTEMPT, LABEL_RUN, VERSION
from podtask_api.app import create_app
from tests.embedded_kube import EmbeddedKube, KubeNamespace


def test_trigger_prints_the_run_id_and_passes_the_options(
    api_env: dict[str, str], namespace: KubeNamespace
) -> None:
    done = podtask(
        "trigger",
        "hello-world",
        "--payload",
        '{"name": "Ada"}',
        *("--tag", "vip", "--tag", "docs", "--priority", "3", "--delay", "1h"),
        *("--ttl", "10m", "--machine", "medium-1x", "--idempotency-key", "k-1"),
        *("--concurrency-key", "tenant-1", "--max-attempts", "2", "--test"),
        env=api_env,
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    spec = namespace.run(run_id)["spec"]
    assert spec["payload"] == {"name": "Ada"} and spec["tags"] == ["vip", "docs"]
    assert spec["isTest"] is True
    assert (spec["priority"], spec["machine"], spec["ttlSeconds"]) == (3, "medium-1x", 600)
    assert (spec["idempotencyKey"], spec["concurrencyKey"]) == ("k-1", "tenant-1")
    assert spec["retry"]["maxAttempts"] == 2 and "delayUntil" in spec

    again = podtask("trigger", "hello-world", "--idempotency-key", "k-1", env=api_env)
    # The same run, said plainly: it is not a new one.
    assert again.stdout.strip() == run_id
    assert again.stderr == f"existing run {run_id} (same idempotency key)\n"

    bad = podtask("trigger", "hello-world", "--machine", "huge", env=api_env)
    assert bad.returncode == 1 and "machine" in bad.stderr
    missing = podtask("trigger", "nope", env=api_env)
    assert missing.returncode == 1 and "podtask deploy" in missing.stderr
    usage = podtask("trigger", "hello-world", "--delay", "soon", env=api_env)
    assert usage.returncode == 2 and "neither a duration" in usage.stderr


def test_trigger_wait_shows_progress_then_the_output(
    api_env: dict[str, str], namespace: KubeNamespace
) -> None:
    completed = {"phase": "Completed", "output": {"message": "Hello, Ada"}}
    operator = play_operator(namespace, completed)
    done = podtask("trigger", "hello-world", "--payload", '{"name": "Ada"}', "--wait", env=api_env)
    operator.join()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"message": "Hello, Ada"}
    [run_id] = namespace.run_names()
    # Not a terminal: one plain line per status, no spinner or escape codes.
    lines = done.stderr.splitlines()
    assert lines[0] == f"Triggered {run_id}"
    assert f"{run_id}: Executing (attempt 1)" in lines
    assert lines[-1] == f"{run_id}: Completed" and "\x1b" not in done.stderr


def test_trigger_wait_of_a_failed_run_prints_its_error(
    api_env: dict[str, str], namespace: KubeNamespace
) -> None:
    error = {"type": "ValueError", "message": "no name given", "stack": "Traceback: …"}
    operator = play_operator(namespace, {"phase": "Failed", "error": error})
    done = podtask("trigger", "hello-world", "--wait", env=api_env)
    operator.join()
    assert done.returncode == 1 and done.stdout == ""
    assert "Failed\nValueError: no name given\nTraceback: …" in done.stderr


def test_keys_create_list_and_revoke_through_the_kubeconfig(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, tmp_path: Path
) -> None:
    where = ("--kubeconfig", str(embedded_kube.kubeconfig), "--namespace", namespace.name)
    created = podtask("keys", "create", "--name", "grafana", "--read-only", *where, env={})
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("pt_") and "\n" not in key
    assert "read key 'grafana'" in created.stderr and key not in created.stderr
    writer = podtask("keys", "create", "--name", "ci", *where, env={}).stdout.strip()

    listed = podtask("keys", "list", *where, env={})
    assert listed.stdout.splitlines() == ["NAME     ACCESS", "grafana  read", "ci       write"]
    taken = podtask("keys", "create", "--name", "ci", *where, env={})
    assert taken.returncode == 1 and "already an API key named 'ci'" in taken.stderr

    settings = settings_for(embedded_kube, namespace, api_key_hashes="", api_keys_cache_seconds=0)
    with served(create_app(settings)) as url, httpx.Client(base_url=url) as api:
        run_id = api.post(
            "/api/v1/tasks/hello-world/trigger", json={}, headers=bearer(writer)
        ).json()["id"]
        assert api.get(f"/api/v1/runs/{run_id}", headers=bearer(key)).status_code == 200
        refused = api.post(f"/api/v1/runs/{run_id}/cancel", headers=bearer(key))
        assert_error(refused, 403, "read_only_key")

        revoked = podtask("keys", "revoke", "grafana", *where, env={})
        assert revoked.returncode == 0, revoked.stderr
        assert_error(api.get(f"/api/v1/runs/{run_id}", headers=bearer(key)), 401, "unauthorized")
    unknown = podtask("keys", "revoke", "grafana", *where, env={})
    assert unknown.returncode == 1 and "no API key named 'grafana'" in unknown.stderr
    no_config = podtask(
        "keys", "list", env={"KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)}
    )
    assert no_config.returncode == 2 and "kubeconfig" in no_config.stderr


def _attempt_pod(namespace: KubeNamespace, kube: EmbeddedKube, run_id: str, script: str) -> None:
    """What the operator does for attempt 1: its pod, which the local kubelet runs."""
    pod = {
        "metadata": {
            "name": f"{run_id}-1",
            "labels": {LABEL_RUN: run_id, LABEL_ATTEMPT: "1"},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "task", "image": "tasks:1", "command": [sys.executable, "-c", script]}
            ],
        },
    }
    kube_client.CoreV1Api(kube.api).create_namespaced_pod(namespace.name, pod)
    namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1})


def test_runs_list_get_and_logs(
    embedded_kube: EmbeddedKube, api_env: dict[str, str], namespace: KubeNamespace
) -> None:
    first = podtask("trigger", "hello-world", "--payload", '{"n": 1}', env=api_env).stdout.strip()
    second = podtask("trigger", "hello-world", "--tag", "vip", env=api_env).stdout.strip()
    namespace.set_run_status(
        first,
        {
            "phase": "Completed",
            "attempt": 1,
            "machine": "small-1x",
            "output": {"greeting": "hi"},
            "startedAt": "2024-05-01T12:00:00Z",
            "finishedAt": "2024-05-01T12:00:02.5Z",
        },
    )

    listed = podtask("runs", "list", env=api_env)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "TASK", "STATUS", "ATTEMPT", "MACHINE", "CREATED", "DURATION"]
    assert [row.split()[:3] for row in rows] == [
        [second, "hello-world", "Pending"],
        [first, "hello-world", "Completed"],
    ]
    assert rows[1].split()[-1] == "2.5s"
    only_vip = podtask("runs", "list", "--tag", "vip", env=api_env).stdout.splitlines()
    assert [row.split()[0] for row in only_vip[1:]] == [second]
    one = podtask("runs", "list", "--limit", "1", env=api_env)
    assert len(one.stdout.splitlines()) == 2 and "--limit N shows more" in one.stderr
    completed = podtask("runs", "list", "--status", "Completed", env=api_env).stdout
    assert second not in completed and first in completed

    test_run = podtask("trigger", "hello-world", "--test", env=api_env).stdout.strip()
    only_tests = podtask("runs", "list", "--test", env=api_env).stdout.splitlines()
    assert [row.split()[0] for row in only_tests[1:]] == [test_run]
    assert "Test run:" in podtask("runs", "get", test_run, env=api_env).stdout

    details = podtask("runs", "get", first, env=api_env)
    assert details.returncode == 0, details.stderr
    assert "Status:    Completed" in details.stdout
    assert details.stdout.endswith('Output:\n{\n  "greeting": "hi"\n}\n')
    raw = json.loads(podtask("runs", "get", first, "--json", env=api_env).stdout)
    assert raw["payload"] == {"n": 1}
    missing = podtask("runs", "get", "run-missing", env=api_env)
    assert missing.returncode == 1 and "there is no run 'run-missing'" in missing.stderr

    _attempt_pod(namespace, embedded_kube, second, "print('hello from the task'); print('done')")
    deadline = time.monotonic() + 60
    while True:
        logs = podtask("runs", "logs", second, "--attempt", "1", env=api_env)
        if logs.returncode == 0 and "done" in logs.stdout:
            break
        assert time.monotonic() < deadline, logs.stderr
        time.sleep(0.2)
    assert logs.stdout == "hello from the task\ndone\n"
    followed = podtask("runs", "logs", second, "--follow", env=api_env)
    assert followed.returncode == 0 and followed.stdout == logs.stdout
    gone = podtask("runs", "logs", first, env=api_env)
    assert gone.returncode == 1 and "HTTP 404" in gone.stderr


def test_queues_list_pause_resume_and_limit(
    api_env: dict[str, str], namespace: KubeNamespace, embedded_kube: EmbeddedKube
) -> None:
    queue = {
        "apiVersion": API_VERSION,
        "kind": "TaskQueue",
        "metadata": {"name": "greetings"},
        "spec": {"concurrencyLimit": 2, "paused": False},
    }
    objects = kube_client.CustomObjectsApi(embedded_kube.api)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace.name, "taskqueues", queue)

    assert podtask("queues", "pause", "greetings", env=api_env).returncode == 0
    limited = podtask("queues", "limit", "greetings", "5", env=api_env)
    assert limited.stdout.strip() == "Set the concurrency limit of greetings to 5"
    listed = podtask("queues", env=api_env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "NAME       LIMIT  PAUSED  RUNNING  QUEUED",
        "greetings  5      yes     0        0",
    ]
    assert podtask("queues", "resume", "greetings", env=api_env).returncode == 0
    assert podtask("queues", "limit", "greetings", "default", env=api_env).returncode == 0
    # Back to the declared limit, else the default: which one is in force is the operator's
    # to write, and no operator runs here.
    assert podtask("queues", "list", env=api_env).stdout.splitlines()[1].split() == [
        "greetings",
        "-",
        "no",
        "0",
        "0",
    ]
    unknown = podtask("queues", "pause", "nope", env=api_env)
    assert unknown.returncode == 1 and "HTTP 404" in unknown.stderr
    bad = podtask("queues", "limit", "greetings", "-1", env=api_env)
    assert bad.returncode == 2 and "negative" in bad.stderr
