"""The node agent starts a pod's ended containers again as its restartPolicy says, the way a
kubelet does, on a real control plane: at once the first time, then after a back-off shown as
CrashLoopBackOff (with its Warning Event), the restart count and the last end in the status,
the run before the current one's log behind `kubectl logs --previous`; an OnFailure pod ends
Succeeded once its container exits 0; an Always pod runs until it is deleted, and its
containers lost with the agent start again when it is back."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client, watch

from tests.e2e.conftest import wait_until
from tests.node_agent.conftest import NS, AgentThread, pod_events, pod_manifest, read_pod

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def counting_script(counter: Path, exit_codes: str) -> str:
    """A container that says which run of it this is, then exits with the code `exit_codes`
    gives that run (`exit_codes[n - 1]`; past its end it sleeps)."""
    return (
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = len(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text('x' * n)\n"
        "print(f'run {n}', flush=True)\n"
        f"codes = {exit_codes!r}\n"
        "if n <= len(codes): sys.exit(int(codes[n - 1]))\n"
        "time.sleep(600)\n"
    )


def pod_statuses(
    core: client.CoreV1Api,
    kubectl: Kubectl,
    manifest: str,
    name: str,
    until: Callable[[dict[str, Any]], bool],
) -> list[dict[str, Any]]:
    """Create the pod and return every version of it the watch shows, up to the first for
    which `until` holds."""
    listed = core.list_namespaced_pod(NS, field_selector=f"metadata.name={name}")
    kubectl("create", "-f", "-", input=manifest)
    seen: list[dict[str, Any]] = []
    stream = watch.Watch().stream(
        core.list_namespaced_pod,
        NS,
        field_selector=f"metadata.name={name}",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=90,
    )
    for event in stream:
        pod: dict[str, Any] = core.api_client.sanitize_for_serialization(event["object"])
        seen.append(pod)
        if until(pod):
            return seen
    last = seen[-1].get("status") if seen else None
    raise AssertionError(f"the pod never got there; its last status: {last}")


def main_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    found: dict[str, Any] = statuses[0]
    return found


def test_a_container_that_keeps_ending_starts_again_with_a_back_off(
    core: client.CoreV1Api, kubectl: Kubectl, name: str, tmp_path: Path
) -> None:
    script = counting_script(tmp_path / "runs", "11")
    manifest = pod_manifest(name, script, restart_policy="Always")
    seen = pod_statuses(
        core,
        kubectl,
        manifest,
        name,
        lambda pod: (
            main_status(pod).get("restartCount") == 2
            and "running" in (main_status(pod).get("state") or {})
        ),
    )
    pod = seen[-1]
    uid = pod["metadata"]["uid"]
    assert {p["status"].get("phase") for p in seen if p.get("status")} <= {"Pending", "Running"}
    # The first end starts it again at once; the second waits the back-off, saying so.
    waiting = [main_status(p)["state"]["waiting"] for p in seen if _crash_looping(p)]
    assert waiting and waiting[0] == {
        "reason": "CrashLoopBackOff",
        "message": f"back-off 1s restarting failed container=main pod={name}_{NS}({uid})",
    }
    assert all(main_status(p)["restartCount"] == 1 for p in seen if _crash_looping(p))
    last = main_status(pod)["lastState"]["terminated"]
    assert last["exitCode"] == 1 and last["reason"] == "Error"
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True"

    assert kubectl("logs", name).stdout == "run 3\n"
    assert kubectl("logs", name, "--previous").stdout == "run 2\n"
    events = pod_events(core, name)
    back_off = [e for e in events if e["reason"] == "BackOff"]
    assert back_off and back_off[0]["type"] == "Warning"
    assert back_off[0]["message"] == (
        f"Back-off restarting failed container main in pod {name}_{NS}({uid})"
    )
    assert sum(e["reason"] == "Started" for e in events) == 3
    kubectl("delete", "pod", name, "--wait=true", "--timeout=60s")


def _crash_looping(pod: dict[str, Any]) -> bool:
    state = main_status(pod).get("state") or {}
    return (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff"


def test_an_on_failure_pod_ends_succeeded_once_its_container_exits_0(
    core: client.CoreV1Api, kubectl: Kubectl, name: str, tmp_path: Path
) -> None:
    script = counting_script(tmp_path / "runs", "10")
    manifest = pod_manifest(name, script, restart_policy="OnFailure")
    seen = pod_statuses(
        core, kubectl, manifest, name, lambda pod: pod["status"].get("phase") == "Succeeded"
    )
    assert "Failed" not in {p["status"].get("phase") for p in seen}
    status = main_status(seen[-1])
    assert status["restartCount"] == 1
    assert status["state"]["terminated"]["reason"] == "Completed"
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert kubectl("logs", name).stdout == "run 2\n"
    assert kubectl("logs", name, "--previous").stdout == "run 1\n"


def test_an_always_pod_whose_container_exits_0_runs_until_it_is_deleted(
    core: client.CoreV1Api, kubectl: Kubectl, name: str
) -> None:
    manifest = pod_manifest(name, "print('done')", restart_policy="Always")
    seen = pod_statuses(
        core, kubectl, manifest, name, lambda pod: main_status(pod).get("restartCount") == 3
    )
    assert {p["status"].get("phase") for p in seen if p.get("status")} <= {"Pending", "Running"}
    assert any(_crash_looping(p) for p in seen)
    assert main_status(seen[-1])["lastState"]["terminated"]["reason"] == "Completed"
    kubectl("delete", "pod", name, "--wait=true", "--timeout=60s")
    wait_until(
        lambda: not core.list_namespaced_pod(NS, field_selector=f"metadata.name={name}").items
    )


def test_a_restarted_agent_starts_the_lost_containers_of_an_always_pod_again(
    core: client.CoreV1Api, kubectl: Kubectl, node_agent: AgentThread, name: str
) -> None:
    manifest = pod_manifest(name, "import time; time.sleep(600)", restart_policy="Always")
    seen = pod_statuses(
        core, kubectl, manifest, name, lambda pod: "running" in main_status(pod).get("state", {})
    )
    first = main_status(seen[-1])["containerID"]
    node_agent.stop()
    try:
        # The node is lost: its containers are gone with it.
        wait_until(lambda: not psutil.pid_exists(int(first.split("//")[1])))
    finally:
        node_agent.start()

    def running_again() -> dict[str, Any] | None:
        status = main_status(read_pod(core, name))
        again = "running" in status.get("state", {}) and status["containerID"] != first
        return status if again else None

    status = wait_until(running_again)
    assert read_pod(core, name)["status"]["phase"] == "Running"
    assert status["restartCount"] == 1
    lost = status["lastState"]["terminated"]
    assert lost["reason"] == "ContainerStatusUnknown" and lost["exitCode"] == 137
    assert lost["containerID"] == first
    kubectl("delete", "pod", name, "--wait=true", "--timeout=60s")
