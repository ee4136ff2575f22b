"""Nothing a pod starts outlives it: a process that double-forks into a session of its own
(`setsid`) is killed when its pod ends, whatever way it ends, and when the cluster stops or
dies."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from devcluster_testing import wait_for
from kubernetes import client, config

from podtask_devcluster import EmbeddedCluster

# Not unit (tests/tiers.py): starts clusters and their pods' processes.
pytestmark = pytest.mark.component

NS = "default"

# The main process forks; the child starts a new session and forks again, and the grandchild
# (a daemon: no parent but init, or whoever reaps orphans) writes its pid and sleeps.
DOUBLE_FORK = """
import os, sys, time
pidfile = {pidfile!r}
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        {daemon}
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        time.sleep(300)
    os._exit(0)
os.wait()
while not os.path.exists(pidfile):
    time.sleep(0.01)
print("forked", flush=True)
deadline = time.monotonic() + {main_seconds}
while time.monotonic() < deadline and not os.path.exists(pidfile + ".go"):
    time.sleep(0.01)
"""


def _pod(name: str, pidfile: Path, main_seconds: float, daemon: str = "pass") -> dict[str, Any]:
    script = DOUBLE_FORK.format(pidfile=str(pidfile), main_seconds=main_seconds, daemon=daemon)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": "python:3.11", "command": [sys.executable, "-c", script]}
            ],
        },
    }


def _daemon(pidfile: Path) -> psutil.Process:
    """The daemon, once it has written its pid."""
    wait_for(pidfile.exists, 30, what="the daemon's pid file")
    process = psutil.Process(int(pidfile.read_text()))
    assert process.is_running()
    return process


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE and process.ppid() == 1
    except psutil.NoSuchProcess:
        return True


def _assert_gone(process: psutil.Process) -> None:
    wait_for(lambda: _gone(process), 30, what=f"daemon {process.pid} to be killed")


def _phase(core: client.CoreV1Api, name: str) -> str | None:
    phase = core.read_namespaced_pod(name, NS).status.phase
    return phase if phase in ("Succeeded", "Failed") else None


def test_a_setsid_daemon_dies_when_its_pod_exits(
    api: client.ApiClient, cluster: EmbeddedCluster, name: str
) -> None:
    core = client.CoreV1Api(api)
    pidfile = cluster.workdir / f"{name}.pid"
    core.create_namespaced_pod(NS, _pod(name, pidfile, main_seconds=300))
    daemon = _daemon(pidfile)
    pidfile.with_name(pidfile.name + ".go").touch()  # the main process exits now
    assert wait_for(lambda: _phase(core, name), 30, what="pod finished") == "Succeeded"
    # The pod's status says it ended only once all of its processes are gone.
    assert _gone(daemon)


def test_a_setsid_daemon_dies_when_its_pod_is_deleted(
    api: client.ApiClient, cluster: EmbeddedCluster, name: str
) -> None:
    core = client.CoreV1Api(api)
    pidfile = cluster.workdir / f"{name}.pid"
    core.create_namespaced_pod(NS, _pod(name, pidfile, main_seconds=300))
    daemon = _daemon(pidfile)
    core.delete_namespaced_pod(name, NS, grace_period_seconds=1)
    _assert_gone(daemon)


def test_a_setsid_daemon_counts_against_the_memory_limit(
    api: client.ApiClient, cluster: EmbeddedCluster, name: str
) -> None:
    core = client.CoreV1Api(api)
    pidfile = cluster.workdir / f"{name}.pid"
    body = _pod(name, pidfile, main_seconds=300, daemon="block = b'x' * (300 * 1024 * 1024)")
    body["spec"]["containers"][0]["resources"] = {"limits": {"memory": "128Mi"}}
    core.create_namespaced_pod(NS, body)
    assert wait_for(lambda: _phase(core, name), 60, what="pod killed") == "Failed"
    state = core.read_namespaced_pod(name, NS).status.container_statuses[0].state.terminated
    assert (state.reason, state.exit_code) == ("OOMKilled", 137)
    if pidfile.exists():
        _assert_gone(psutil.Process(int(pidfile.read_text())))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_the_command_dies_when_its_shim_is_killed(
    api: client.ApiClient, cluster: EmbeddedCluster, name: str
) -> None:
    core = client.CoreV1Api(api)
    pidfile = cluster.workdir / f"{name}.pid"
    core.create_namespaced_pod(NS, _pod(name, pidfile, main_seconds=300))
    daemon = _daemon(pidfile)
    (shim,) = [
        process
        for process in psutil.Process().children()
        if "podshim.py" in " ".join(process.cmdline())
        and any(str(pidfile) in " ".join(c.cmdline()) for c in process.children())
    ]
    # The shim's children: the command, and the daemon it adopted as the subreaper.
    (command,) = [child for child in shim.children() if child.pid != daemon.pid]
    shim.kill()
    try:
        wait_for(lambda: _gone_or_reaped(command), 30, what="the command to die with its shim")
        assert wait_for(lambda: _phase(core, name), 30, what="pod finished") == "Failed"
    finally:
        # Orphaned by the shim's death, the daemon is out of any pod's reach (no cgroup here).
        daemon.kill()


def _gone_or_reaped(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_setsid_daemon_dies_when_the_cluster_stops(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    with EmbeddedCluster(tmp_path / "state", workdir=tmp_path) as cluster:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
        client.CoreV1Api(api).create_namespaced_pod(NS, _pod("p", pidfile, main_seconds=300))
        daemon = _daemon(pidfile)
        api.close()
    _assert_gone(daemon)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_a_setsid_daemon_dies_when_the_cluster_process_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    state = tmp_path / "state"
    server = subprocess.Popen(
        [sys.executable, "-m", "podtask_devcluster", "--state-dir", str(state)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # the URL: it is serving
        api = config.new_client_from_config(config_file=str(state / "kubeconfig"))
        client.CoreV1Api(api).create_namespaced_pod(NS, _pod("p", pidfile, main_seconds=300))
        daemon = _daemon(pidfile)
        api.close()
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        _assert_gone(daemon)
    finally:
        server.kill()
        server.wait()
