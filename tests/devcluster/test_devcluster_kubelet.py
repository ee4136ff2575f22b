"""The embedded cluster's node (the node agent), through the API: pods run as local
processes, with status, logs, memory limits, environment and graceful deletion."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from devcluster_testing import wait_for
from kubernetes import client
from kubernetes.client.rest import ApiException

from podtask_devcluster import EmbeddedCluster

NS = "default"


def _pod(name: str, script: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"test": "kubelet"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.11",
                    "command": ["python", "-c", script],
                    **container,
                }
            ],
        },
    }


def _finished(core: client.CoreV1Api, name: str, timeout: float = 15) -> client.V1Pod:
    def check() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, NS)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    return wait_for(check, timeout, what=f"pod {name} to finish")


def _started_log(core: client.CoreV1Api, name: str) -> str:
    """The log so far; empty while the container has not started (kube answers 400)."""
    try:
        return str(core.read_namespaced_pod_log(name, NS))
    except ApiException as error:
        if int(error.status) == 400 and "waiting to start" in str(error.body):
            return ""
        raise


def _gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, NS)
    except ApiException as error:
        return int(error.status) == 404
    return False


def test_echo_pod_succeeds_with_logs(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        NS, _pod(name, "import sys; print('hello'); print('oops', file=sys.stderr)")
    )
    pod = _finished(core, name)
    assert pod.status.phase == "Succeeded"
    state = pod.status.container_statuses[0].state.terminated
    assert state.exit_code == 0 and state.reason == "Completed"
    assert state.started_at is not None and state.finished_at is not None
    assert pod.status.pod_ip == "127.0.0.1" and pod.spec.node_name == "podtask-dev"
    logs = core.read_namespaced_pod_log(name, NS)
    assert logs == "hello\noops\n"
    assert core.read_namespaced_pod_log(name, NS, tail_lines=1) == "oops\n"


def test_exit_code_fails_pod(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(NS, _pod(name, "raise SystemExit(3)"))
    pod = _finished(core, name)
    state = pod.status.container_statuses[0].state.terminated
    assert (pod.status.phase, state.reason, state.exit_code) == ("Failed", "Error", 3)


def test_unknown_command_is_a_start_error(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    body = _pod(name, "")
    body["spec"]["containers"][0]["command"] = ["definitely-not-a-command-xyz"]
    core.create_namespaced_pod(NS, body)
    pod = _finished(core, name)
    state = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Failed" and state.reason == "StartError"
    assert "definitely-not-a-command-xyz" in state.message


ALLOCATE = (
    "import time; block = b'x' * ({mib} * 1024 * 1024); print('allocated', flush=True); "
    "time.sleep(0.6)"
)


def test_memory_limit_kills_with_oomkilled(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    over = _pod(name, ALLOCATE.format(mib=300), resources={"limits": {"memory": "128Mi"}})
    under = _pod(f"{name}-ok", ALLOCATE.format(mib=20), resources={"limits": {"memory": "0.25Gi"}})
    core.create_namespaced_pod(NS, over)
    core.create_namespaced_pod(NS, under)
    killed = _finished(core, name)
    state = killed.status.container_statuses[0].state.terminated
    assert (killed.status.phase, state.reason, state.exit_code) == ("Failed", "OOMKilled", 137)
    survived = _finished(core, f"{name}-ok")
    assert survived.status.phase == "Succeeded"
    assert survived.status.container_statuses[0].state.terminated.reason == "Completed"


def test_a_process_killed_from_outside_is_an_error_not_oomkilled(
    api: client.ApiClient, name: str
) -> None:
    """Like the real kubelet: a SIGKILL that is not the memory limit's is reason Error, 137."""
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        NS, _pod(name, "import os, time; print(os.getpid(), flush=True); time.sleep(60)")
    )
    pid = wait_for(lambda: _started_log(core, name).strip(), 15, what="its pid")
    os.kill(int(pid), signal.SIGKILL)
    killed = _finished(core, name)
    state = killed.status.container_statuses[0].state.terminated
    assert (killed.status.phase, state.reason, state.exit_code) == ("Failed", "Error", 137)


def test_environment_from_spec(api: client.ApiClient, cluster: EmbeddedCluster, name: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        NS, {"metadata": {"name": name}, "stringData": {"token": "s3cret"}}
    )
    core.create_namespaced_config_map(NS, {"metadata": {"name": name}, "data": {"mode": "fast"}})
    script = (
        "import os, sys; keys = ['LITERAL', 'EXPANDED', 'TOKEN', 'MODE', 'POD', 'POD_NS', 'IP', "
        "'LABEL', 'CM_mode']; print(';'.join(f'{k}={os.environ.get(k)}' for k in keys)); "
        "print('KUBE' + '_LEAK=' + str(any(k.startswith('KUBE') for k in os.environ))); "
        "print('PY=' + str(os.path.dirname(sys.executable))); print('CWD=' + os.getcwd())"
    )
    body = _pod(
        name,
        script,
        env=[
            {"name": "LITERAL", "value": "one"},
            {"name": "EXPANDED", "value": "$(LITERAL)-two"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": name, "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": name, "key": "mode"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {
                "name": "LABEL",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['test']"}},
            },
        ],
        envFrom=[{"configMapRef": {"name": name}, "prefix": "CM_"}],
    )
    core.create_namespaced_pod(NS, body)
    assert _finished(core, name).status.phase == "Succeeded"
    lines = core.read_namespaced_pod_log(name, NS).splitlines()
    assert lines[0] == (
        f"LITERAL=one;EXPANDED=one-two;TOKEN=s3cret;MODE=fast;POD={name};POD_NS=default;"
        "IP=127.0.0.1;LABEL=kubelet;CM_mode=fast"
    )
    assert lines[1] == "KUBE_LEAK=False"
    assert lines[2] == "PY=" + str(Path(sys.executable).parent)
    assert lines[3] == "CWD=" + str(cluster.workdir)


def test_missing_secret_keeps_pod_waiting_and_logs_answer_400(
    api: client.ApiClient, name: str
) -> None:
    core = client.CoreV1Api(api)
    body = _pod(
        name,
        "print(1)",
        env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}],
    )
    core.create_namespaced_pod(NS, body)

    def waiting_reason() -> str | None:
        statuses = core.read_namespaced_pod(name, NS).status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return waiting.reason if waiting and waiting.reason != "ContainerCreating" else None

    assert wait_for(waiting_reason, what="config error") == "CreateContainerConfigError"
    with pytest.raises(ApiException) as error:
        core.read_namespaced_pod_log(name, NS)
    assert int(error.value.status) == 400 and "waiting to start" in error.value.body
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod_log("no-such-pod", NS)
    assert int(missing.value.status) == 404
    core.delete_namespaced_pod(name, NS)
    wait_for(lambda: _gone(core, name), what="pending pod removed at once")


def test_graceful_delete_sends_sigterm_first(
    api: client.ApiClient, cluster: EmbeddedCluster, name: str
) -> None:
    core = client.CoreV1Api(api)
    marker = cluster.workdir / f"{name}.term"
    script = (
        "import signal, sys, time, pathlib\n"
        "def stop(*_):\n"
        f"    pathlib.Path({str(marker)!r}).write_text('TERM')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    core.create_namespaced_pod(NS, _pod(name, script))
    wait_for(
        lambda: (
            core.read_namespaced_pod_log(name, NS) == "ready\n"
            if core.read_namespaced_pod(name, NS).status.phase == "Running"
            else None
        ),
        what="process ready",
    )
    deleted = core.delete_namespaced_pod(name, NS)
    assert deleted.metadata.deletion_timestamp is not None
    assert deleted.metadata.deletion_grace_period_seconds == 30
    # The process ends itself on SIGTERM, so the pod goes without waiting out its 30 s grace:
    # a deadline well inside the grace tells the two apart.
    wait_for(lambda: _gone(core, name), timeout=25, what="pod removed after SIGTERM")
    assert marker.read_text() == "TERM"
    assert not (cluster.log_dir / f"{NS}_{name}_main.log").exists()  # logs go with the pod


def test_grace_period_ends_with_sigkill(
    api: client.ApiClient, cluster: EmbeddedCluster, name: str
) -> None:
    core = client.CoreV1Api(api)
    # The process's own record: its pid, then each SIGTERM it got (and ignored).
    record = cluster.workdir / f"{name}.record"
    script = (
        "import os, pathlib, signal, time\n"
        f"record = pathlib.Path({str(record)!r})\n"
        "def ignore(*_):\n"
        "    with record.open('a') as f: f.write('TERM\\n')\n"
        "signal.signal(signal.SIGTERM, ignore)\n"
        "record.write_text(f'{os.getpid()}\\n')\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
        "with record.open('a') as f: f.write('slept\\n')\n"
    )
    core.create_namespaced_pod(NS, _pod(name, script))
    wait_for(
        lambda: (
            core.read_namespaced_pod(name, NS).status.phase == "Running"
            and core.read_namespaced_pod_log(name, NS) == "ready\n"
        ),
        what="process ready",
    )
    pid = int(record.read_text().split()[0])
    core.delete_namespaced_pod(name, NS, grace_period_seconds=1)
    wait_for(lambda: _gone(core, name), timeout=60, what="pod removed after SIGKILL")
    # It got SIGTERM, ignored it, and is dead all the same: only SIGKILL does that.
    assert record.read_text().split()[1:] == ["TERM"]
    wait_for(lambda: not _alive(pid), timeout=60, what=f"process {pid} gone")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_multi_container_pod_ends_when_all_end(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    body = _pod(name, "print('first')")
    body["spec"]["containers"].append(
        {
            "name": "second",
            "image": "x",
            "command": ["python", "-c", "import time; time.sleep(0.5); print('second')"],
        }
    )
    core.create_namespaced_pod(NS, body)
    pod = _finished(core, name)
    assert pod.status.phase == "Succeeded"
    assert core.read_namespaced_pod_log(name, NS, container="second") == "second\n"
    with pytest.raises(ApiException) as ambiguous:
        core.read_namespaced_pod_log(name, NS)
    assert int(ambiguous.value.status) == 400


def test_follow_logs_stream_until_exit(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    script = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.2)\n"
    core.create_namespaced_pod(NS, _pod(name, script))
    wait_for(
        lambda: core.read_namespaced_pod(name, NS).status.phase != "Pending",
        what="pod started",
    )
    response = core.read_namespaced_pod_log(name, NS, follow=True, _preload_content=False)
    assert response.data.decode() == "0\n1\n2\n"
