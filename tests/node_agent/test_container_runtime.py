"""The node agent in container mode on a real control plane: each pod's containers run with
podman from the pod's image, as its spec says (command and args against the image's
ENTRYPOINT and CMD, user, read-only root, capabilities, environment with a Secret, emptyDir
and hostPath volumes), with the kernel enforcing the memory limit (OOMKilled, 137), its logs
read through the apiserver, a container started again as its restartPolicy says, an image the
node lacks a failed pull, and a deletion that stops it with its grace period and leaves
nothing of it in podman."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from podtask_devcluster.container_cgroups import cgroup_mounts
from podtask_devcluster.control_plane import ControlPlane
from podtask_devcluster.image_build import ensure_base_image
from podtask_devcluster.podman import tool_env
from tests.e2e.conftest import wait_until
from tests.node_agent.conftest import NS, AgentThread

# Without podman and friends these are deselected, with one summary line (tests/conftest.py).
pytestmark = pytest.mark.images

NODE = "podtask-containers"
TEST_IMAGE = "localhost/podtask/node-agent-test:latest"
# What the probe sees from inside its container, as one JSON line.
PROBE = r"""
import json, os, sys

def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w") as handle:
            handle.write("x")
        os.unlink(os.path.join(path, ".probe"))
        return True
    except OSError:
        return False

status = dict(
    line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line
)
print(json.dumps({
    "argv": sys.argv[1:],
    "uid": os.getuid(),
    "gid": os.getgid(),
    "cap_eff": int(status["CapEff"].strip(), 16),
    "no_new_privs": status.get("NoNewPrivs", "").strip(),
    "root_writable": writable("/"),
    "tmp_writable": writable("/tmp"),
    "env": dict(os.environ),
    "cwd": os.getcwd(),
    "marker": open("/opt/image-marker").read().strip(),
}), flush=True)
"""
CONTAINERFILE = """\
ARG BASE
FROM $BASE
COPY probe.py /opt/probe.py
COPY image-marker /opt/image-marker
USER 10001:10001
ENTRYPOINT ["python3", "/opt/probe.py"]
CMD ["from-the-image-cmd"]
"""


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=tool_env(), timeout=300
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A test image from the base: the probe as ENTRYPOINT, a CMD, USER 10001 and a file
    that only this image has."""
    context = tmp_path_factory.mktemp("image")
    (context / "Containerfile").write_text(CONTAINERFILE)
    (context / "probe.py").write_text(PROBE)
    (context / "image-marker").write_text("made for the node agent's tests\n")
    base = ensure_base_image()
    done = subprocess.run(
        [
            *("buildah", "bud", "--build-arg", f"BASE={base}", "-t", TEST_IMAGE),
            *("-f", str(context / "Containerfile"), str(context)),
        ],
        capture_output=True,
        text=True,
        env=tool_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return TEST_IMAGE


@pytest.fixture(scope="module")
def container_node(
    plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentThread]:
    running = AgentThread(
        plane, tmp_path_factory.mktemp("container-node"), node=NODE, runtime="containers"
    )
    (running.state_dir / "credentials").mkdir(exist_ok=True)
    running.start()
    try:
        yield running
    finally:
        if running.agent is not None:
            running.stop()
        # No pod of the other tests may be scheduled on a node that is gone.
        api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        with api:
            try:
                client.CoreV1Api(api).delete_node(NODE)
            except ApiException as error:
                if error.status != 404:
                    raise


@pytest.fixture(scope="module")
def core(plane: ControlPlane, container_node: AgentThread) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(plane.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


@pytest.fixture
def name() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"


def _create(core: client.CoreV1Api, name: str, image: str, **container: Any) -> None:
    pod_spec = container.pop("pod_spec", {})
    core.create_namespaced_pod(
        NS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                # On this node (not the process node of the other tests).
                "nodeName": NODE,
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 30,
                "containers": [{"name": "main", "image": image, **container}],
                **pod_spec,
            },
        },
    )


def _pod(core: client.CoreV1Api, name: str) -> dict[str, Any]:
    data: dict[str, Any] = core.api_client.sanitize_for_serialization(
        core.read_namespaced_pod(name, NS)
    )
    return data


def _finished(core: client.CoreV1Api, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        pod = _pod(core, name)
        return pod if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    found: dict[str, Any] = wait_until(done)
    return found


def _status(pod: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = pod["status"]["containerStatuses"][0]
    return status


def _logs(core: client.CoreV1Api, name: str, **options: Any) -> str:
    text: str = core.read_namespaced_pod_log(name, NS, container="main", **options)
    return text


def _probe(core: client.CoreV1Api, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(_logs(core, name).splitlines()[-1])
    return found


def _events(core: client.CoreV1Api, name: str) -> list[dict[str, Any]]:
    listed = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}")
    return [core.api_client.sanitize_for_serialization(e) for e in listed.items]


def _left_in_podman(uid: str) -> list[str]:
    listed = _podman(
        "ps", "--all", "--filter", f"label=io.kubernetes.pod.uid={uid}", "--format", "{{.Names}}"
    )
    return listed.stdout.split()


def _cgroups_left(uid: str) -> list[Path]:
    mounts = cgroup_mounts(Path("/proc/self/mountinfo").read_text())
    return [
        m.path / "podtask" / f"pod{uid}"
        for m in mounts
        if (m.path / "podtask" / f"pod{uid}").exists()
    ]


def test_a_pod_runs_its_images_entrypoint_to_succeeded_with_its_logs(
    core: client.CoreV1Api, image: str, name: str
) -> None:
    _create(core, name, image)
    pod = _finished(core, name)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    status = _status(pod)
    terminated = status["state"]["terminated"]
    assert terminated["reason"] == "Completed" and terminated["exitCode"] == 0
    assert terminated["startedAt"] and terminated["finishedAt"]
    assert status["containerID"].startswith("podman://")
    assert pod["status"]["podIP"] == pod["status"]["hostIP"] == "127.0.0.1"
    probe = _probe(core, name)
    # The image's ENTRYPOINT with its CMD, as the image's USER, with the image's own file.
    assert probe["argv"] == ["from-the-image-cmd"]
    assert probe["uid"] == 10001
    assert probe["marker"] == "made for the node agent's tests"
    stamped = _logs(core, name, timestamps=True)
    assert stamped.split(" ", 1)[0].endswith("Z") and '"argv"' in stamped
    assert _logs(core, name, since_seconds=3600) == _logs(core, name)
    # Nothing of it is left in podman or in the cgroups once it has ended.
    uid = pod["metadata"]["uid"]
    wait_until(lambda: not _left_in_podman(uid) and not _cgroups_left(uid))


def test_the_spec_decides_user_root_capabilities_environment_and_volumes(
    core: client.CoreV1Api, image: str, name: str, tmp_path: Path
) -> None:
    secret = f"{name}-secret"
    core.create_namespaced_secret(
        NS, {"metadata": {"name": secret}, "data": {"token": base64.b64encode(b"s3cret").decode()}}
    )
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text("from the host\n")
    script = (
        "import runpy, sys; sys.argv = ['probe', *sys.argv[1:]]; "
        "print(open('/data/hello.txt').read().strip()); "
        "runpy.run_path('/opt/probe.py', run_name='__main__')"
    )
    _create(
        core,
        name,
        image,
        command=["python3", "-c", script],
        args=["greeting=$(GREETING)"],
        workingDir="/opt",
        env=[
            {"name": "GREETING", "value": "hello"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}},
        ],
        securityContext={
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        resources={"limits": {"memory": "128Mi", "cpu": "500m"}},
        volumeMounts=[
            {"name": "scratch", "mountPath": "/tmp"},
            {"name": "host", "mountPath": "/data", "readOnly": True},
        ],
        pod_spec={
            "securityContext": {"runAsNonRoot": True},
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "host", "hostPath": {"path": str(shared), "type": "Directory"}},
            ],
        },
    )
    pod = _finished(core, name)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert _logs(core, name).splitlines()[0] == "from the host"
    probe = _probe(core, name)
    assert probe["argv"] == ["greeting=hello"]
    assert (probe["uid"], probe["gid"]) == (10001, 10001)
    assert probe["cap_eff"] == 0 and probe["no_new_privs"] == "1"
    assert probe["root_writable"] is False and probe["tmp_writable"] is True
    assert probe["cwd"] == "/opt"
    env = probe["env"]
    assert env["TOKEN"] == "s3cret" and env["GREETING"] == "hello"
    assert env["HOSTNAME"] == name
    # The image's environment, not the agent's: no venv, no test-run settings.
    assert env["LANG"] == "C.UTF-8" and "VIRTUAL_ENV" not in env
    assert ".venv" not in env["PATH"] and "PYTEST_CURRENT_TEST" not in env


def test_run_as_non_root_refuses_an_image_that_runs_as_root(
    core: client.CoreV1Api, image: str, name: str
) -> None:
    base = ensure_base_image()
    _create(
        core,
        name,
        base,
        command=["python3", "-c", "print('ran')"],
        securityContext={"runAsNonRoot": True},
    )

    def config_error() -> dict[str, Any] | None:
        statuses = _pod(core, name).get("status", {}).get("containerStatuses") or []
        waiting = (statuses and statuses[0]["state"].get("waiting")) or {}
        return waiting if waiting.get("reason") == "CreateContainerConfigError" else None

    waiting = wait_until(config_error)
    assert "runAsNonRoot and image will run as root" in waiting["message"]
    assert _pod(core, name)["status"]["phase"] == "Pending"
    core.delete_namespaced_pod(name, NS, grace_period_seconds=0)


def test_a_container_over_its_memory_limit_is_oom_killed_by_the_kernel(
    core: client.CoreV1Api, image: str, name: str
) -> None:
    script = "blocks = []\nwhile True:\n    blocks.append(bytearray(8 << 20))\n"
    _create(
        core,
        name,
        image,
        command=["python3", "-c", script],
        resources={"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}},
    )
    pod = _finished(core, name)
    assert pod["status"]["phase"] == "Failed"
    terminated = _status(pod)["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137
    wait_until(lambda: "OOMKilling" in {e["reason"] for e in _events(core, name)})
    uid = pod["metadata"]["uid"]
    wait_until(lambda: not _left_in_podman(uid) and not _cgroups_left(uid))


def test_a_container_that_exits_non_zero_is_an_error_and_one_that_cannot_start_a_start_error(
    core: client.CoreV1Api, image: str, name: str
) -> None:
    _create(core, name, image, command=["python3", "-c", "raise SystemExit(3)"])
    failed = _status(_finished(core, name))["state"]["terminated"]
    assert (failed["reason"], failed["exitCode"]) == ("Error", 3)
    cannot = f"{name}-x"
    _create(core, cannot, image, command=["/no/such/program"])
    pod = _finished(core, cannot)
    assert pod["status"]["phase"] == "Failed"
    terminated = _status(pod)["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("StartError", 128)
    assert "/no/such/program" in terminated["message"]
    assert not _left_in_podman(pod["metadata"]["uid"])


def test_an_on_failure_container_starts_again_and_keeps_its_pods_empty_dir(
    core: client.CoreV1Api, image: str, name: str
) -> None:
    script = (
        "import os, sys\n"
        "p = '/work/runs'\n"
        "n = len(open(p).read()) + 1 if os.path.exists(p) else 1\n"
        "open(p, 'w').write('x' * n)\n"
        "print(f'run {n}', flush=True)\n"
        "sys.exit(3 if n == 1 else 0)\n"
    )
    _create(
        core,
        name,
        image,
        command=["python3", "-c", script],
        volumeMounts=[{"name": "work", "mountPath": "/work"}],
        pod_spec={"restartPolicy": "OnFailure", "volumes": [{"name": "work", "emptyDir": {}}]},
    )
    pod = _finished(core, name)
    assert pod["status"]["phase"] == "Succeeded"
    status = _status(pod)
    assert status["restartCount"] == 1 and status["lastState"]["terminated"]["exitCode"] == 3
    assert _logs(core, name) == "run 2\n"
    assert _logs(core, name, previous=True) == "run 1\n"
    assert not _left_in_podman(pod["metadata"]["uid"])


def test_an_image_not_in_the_local_store_is_a_failed_pull(
    core: client.CoreV1Api, container_node: AgentThread, name: str
) -> None:
    absent = "localhost/podtask/absent:0.0.0"
    _create(core, name, absent, command=["python3", "-c", "print('ran')"])

    def waiting(reason: str) -> dict[str, Any] | None:
        statuses = _pod(core, name).get("status", {}).get("containerStatuses") or []
        found = (statuses and statuses[0]["state"].get("waiting")) or {}
        return found if found.get("reason") == reason else None

    pulled = wait_until(lambda: waiting("ErrImagePull"))
    assert absent in pulled["message"] and "local image store" in pulled["message"]
    assert "make images" in pulled["message"] and "podman load" in pulled["message"]
    wait_until(lambda: waiting("ImagePullBackOff"))
    assert not {"Created", "Started"} & {e["reason"] for e in _events(core, name)}
    core.delete_namespaced_pod(name, NS)
    wait_until(lambda: _gone(core, name))


def _gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, NS)
    except ApiException as error:
        return int(error.status) == 404
    return False


def test_deletion_stops_the_container_with_its_grace_period_and_leaves_nothing(
    core: client.CoreV1Api, image: str, name: str, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # the container's user 10001 writes its marker here
    script = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        "    open('/shared/stopped', 'w').write('SIGTERM')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    _create(
        core,
        name,
        image,
        command=["python3", "-c", script],
        volumeMounts=[{"name": "shared", "mountPath": "/shared"}],
        pod_spec={"volumes": [{"name": "shared", "hostPath": {"path": str(shared)}}]},
    )
    wait_until(lambda: _pod(core, name)["status"].get("phase") == "Running")
    wait_until(lambda: _logs(core, name) == "ready\n")
    uid = _pod(core, name)["metadata"]["uid"]
    assert _left_in_podman(uid)
    core.delete_namespaced_pod(name, NS)
    wait_until(lambda: _gone(core, name))
    assert (shared / "stopped").read_text() == "SIGTERM"
    assert not _left_in_podman(uid)
    wait_until(lambda: not _cgroups_left(uid))
    killing = [e for e in _events(core, name) if e["reason"] == "Killing"]
    assert killing and killing[0]["message"] == "Stopping container main"


def test_containers_a_killed_agent_left_are_removed_and_reported_lost_on_its_next_start(
    plane: ControlPlane, core: client.CoreV1Api, image: str, name: str, tmp_path: Path
) -> None:
    node = "podtask-containers-cli"
    args = plane.node_agent_args(node, tmp_path / "agent", tmp_path, runtime="containers")

    def start() -> subprocess.Popen[str]:
        agent = subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert agent.stdout is not None
        assert agent.stdout.readline().startswith(f"node {node} ready")
        return agent

    agent = start()
    try:
        _create(
            core,
            name,
            image,
            command=["python3", "-c", "import time; time.sleep(600)"],
            pod_spec={"nodeName": node},
        )
        wait_until(lambda: _pod(core, name)["status"].get("phase") == "Running")
        uid = _pod(core, name)["metadata"]["uid"]
        agent.kill()
        agent.wait(30)
        # The container outlives the agent that died...
        assert _left_in_podman(uid)
        agent = start()
        # ...and the next agent of that node removes it: the pod was lost with its node.
        lost = _finished(core, name)
        assert lost["status"]["phase"] == "Failed"
        terminated = _status(lost)["state"]["terminated"]
        assert terminated["reason"] == "ContainerStatusUnknown"
        assert not _left_in_podman(uid)
        wait_until(lambda: not _cgroups_left(uid))
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        try:
            core.delete_node(node)
        except ApiException as error:
            if error.status != 404:
                raise


def test_the_embedded_clusters_node_runs_containers_when_told(
    image: str, name: str, tmp_path: Path
) -> None:
    cluster = subprocess.Popen(
        [
            *(sys.executable, "-m", "podtask_devcluster", "--state-dir", str(tmp_path / "state")),
            *("--runtime", "containers"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert cluster.stdout is not None
        url = cluster.stdout.readline().strip().rpartition(" ")[2]
        assert url.startswith("http://")
        pods = f"{url}/api/v1/namespaces/{NS}/pods"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": image}]},
        }
        assert httpx.post(pods, json=body).status_code == 201

        def phase() -> str | None:
            found = httpx.get(f"{pods}/{name}").json().get("status", {}).get("phase")
            return found if found in ("Succeeded", "Failed") else None

        assert wait_until(phase) == "Succeeded"
        status = httpx.get(f"{pods}/{name}").json()["status"]["containerStatuses"][0]
        assert status["containerID"].startswith("podman://")
        probe = json.loads(httpx.get(f"{pods}/{name}/log").text.splitlines()[-1])
        assert probe["uid"] == 10001 and probe["argv"] == ["from-the-image-cmd"]
    finally:
        cluster.send_signal(signal.SIGTERM)
        assert cluster.wait(60) == 0
