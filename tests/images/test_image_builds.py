"""The three images, built for real with buildah (`make images`) and run with podman: each
starts its entrypoint, runs as the user task pods run as, and works with a read-only root
filesystem as the chart and the operator run it; the examples' task image runs a task.

Where podman, buildah, runc or debootstrap are missing, the `built_images` fixture skips every
test that needs an image, from one place: the summary says why in one line. `.ci/run`
installs them.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from podtask_devcluster.podman import tool_env
from podtask_devcluster.ports import free_port
from podtask_operator.settings import OperatorSettings
from tests.e2e.conftest import wait_until
from tests.embedded_kube import EmbeddedKube

RUN_AS_USER = OperatorSettings.model_fields["run_as_user"].default
# How the chart's containerSecurityContext and the operator's task pods run containers.
POD_LIKE = (
    "--read-only",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    f"{RUN_AS_USER}:{RUN_AS_USER}",
)


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run(image: str, *command: str, options: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    return podman("run", "--rm", *options, image, *command)


@pytest.fixture
def writable_tmp(tmp_path: Path) -> Path:
    """The emptyDir the chart and the operator mount at /tmp: writable by the pod's user."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    folder.chmod(0o1777)
    return folder


@pytest.mark.parametrize(
    ("module", "usage"),
    [
        ("podtask_api", "usage: podtask_api"),
        ("podtask_operator", "usage: podtask-operator"),
    ],
)
def test_the_control_plane_image_starts_both_entrypoints(
    built_images: dict[str, str], module: str, usage: str
) -> None:
    done = run(built_images["control-plane"], "python", "-m", module, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(usage), done.stdout


def test_the_runner_image_entrypoint_prints_the_runner_usage(
    built_images: dict[str, str],
) -> None:
    done = run(built_images["runner"], "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m podtask_runner"), done.stdout
    assert "--local MODULE TASK_ID" in done.stdout


@pytest.mark.parametrize("name", ["control-plane", "runner", "examples"])
def test_every_image_runs_as_the_user_task_pods_run_as(
    built_images: dict[str, str], name: str
) -> None:
    image = built_images[name]
    inspected = podman("image", "inspect", "--format", "{{.Config.User}}", image)
    assert inspected.stdout.strip() == f"{RUN_AS_USER}:{RUN_AS_USER}", inspected.stderr
    # The runner's entrypoint would take `id` for its arguments.
    done = run(image, "-u", options=("--entrypoint", "id"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(RUN_AS_USER)
    done = run(image, "-g", options=("--entrypoint", "id"))
    assert done.stdout.strip() == str(RUN_AS_USER)


def requirement_names(extras: frozenset[str]) -> set[str]:
    """The distributions podtask requires with `extras` (and the extras they name)."""
    names: set[str] = set()
    for requirement in importlib.metadata.requires("podtask") or []:
        marker = re.search(r'extra == "([\w-]+)"', requirement)
        if marker is not None and marker.group(1) not in extras:
            continue
        named = re.match(r"podtask\[([\w-]+)\]", requirement)
        if named is None:
            names.add(canonical(re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0]))
        elif named.group(1) not in extras:
            names |= requirement_names(extras | {named.group(1)})
    return names


@pytest.mark.parametrize(
    ("image", "extras"), [("runner", frozenset()), ("control-plane", frozenset({"control-plane"}))]
)
def test_the_images_hold_the_versions_the_project_install_resolved(
    built_images: dict[str, str], image: str, extras: frozenset[str]
) -> None:
    done = run(built_images[image], "-m", "pip", "freeze", options=("--entrypoint", "python"))
    assert done.returncode == 0, done.stderr
    installed = dict(line.split("==") for line in done.stdout.splitlines() if "==" in line)
    assert installed.get("podtask") == importlib.metadata.version("podtask")
    in_image = {canonical(key): value for key, value in installed.items()}
    # Every requirement of what the image runs is there, at the project venv's version, and
    # nothing else drifts.
    for name in requirement_names(extras):
        assert in_image.get(name) == importlib.metadata.version(name), name
    if not extras:
        # The runner (and task images on it) get podtask alone, not the control plane.
        control_plane_only = requirement_names(frozenset({"control-plane"})) - requirement_names(
            frozenset()
        )
        assert not control_plane_only & set(in_image), control_plane_only & set(in_image)
    drifted = {
        name: (version, importlib.metadata.version(name))
        for name, version in installed.items()
        if version != importlib.metadata.version(name)
    }
    assert not drifted, "(image, project venv)"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_examples_image_runs_a_task_as_its_pod_would(
    built_images: dict[str, str], writable_tmp: Path
) -> None:
    image = built_images["examples"]
    assert run(image, "-f", "/app/examples/hello_world.py", options=("--entrypoint", "test"))
    done = run(
        image,
        "--local",
        "examples/hello_world.py",
        "hello-world",
        "--payload",
        '{"name":"x"}',
        options=(*POD_LIKE, "-v", f"{writable_tmp}:/tmp"),
    )
    assert done.returncode == 0, done.stderr
    printed, output = done.stdout.strip().splitlines()[-2:]
    assert printed == "Hello, x! (run local, attempt 1)"
    assert json.loads(output) == {"message": "hello x"}
    assert "completed" in done.stderr


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"podtask-test-{uuid.uuid4().hex[:10]}"
    yield name
    podman("rm", "--force", "--time", "0", name)


def start_control_plane(
    image: str, name: str, kube: EmbeddedKube, tmp: Path, env: dict[str, str], *command: str
) -> None:
    """Run `command` in the control-plane image as the chart runs it: the pod's security
    context and an emptyDir on /tmp; the embedded cluster stands in for the in-cluster API."""
    variables = [f"--env={key}={value}" for key, value in env.items()]
    # A copy the pod's user may read, as a mounted Secret would be (the dev cluster's own is
    # private to its user).
    kubeconfig = tmp.parent / "kubeconfig"
    kubeconfig.write_bytes(kube.kubeconfig.read_bytes())
    kubeconfig.chmod(0o644)
    started = podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        *POD_LIKE,
        "-v",
        f"{tmp}:/tmp",
        "-v",
        f"{kubeconfig}:/kube/config:ro",
        "--env=KUBECONFIG=/kube/config",
        *variables,
        image,
        *command,
    )
    assert started.returncode == 0, started.stderr


def get_while_running(name: str, url: str) -> httpx.Response | None:
    """GET `url`; None while nothing answers, as long as the container still runs."""
    try:
        return httpx.get(url, timeout=5)
    except httpx.TransportError:
        running = podman("container", "inspect", "--format", "{{.State.Running}}", name)
        assert running.stdout.strip() == "true", podman("logs", name).stderr
        return None


def test_the_api_serves_from_the_image_with_a_read_only_root_filesystem(
    built_images: dict[str, str],
    embedded_kube: EmbeddedKube,
    writable_tmp: Path,
    container_name: str,
) -> None:
    namespace = embedded_kube.new_namespace("image-api").name
    port = free_port()
    start_control_plane(
        built_images["control-plane"],
        container_name,
        embedded_kube,
        writable_tmp,
        {"PODTASK_NAMESPACE": namespace, "PODTASK_DEV_MODE": "true"},
        *("python", "-m", "podtask_api", "--host", "127.0.0.1", "--port", str(port)),
    )
    # A list of the namespace's tasks: the API in the image read them from Kubernetes.
    url = f"http://127.0.0.1:{port}/api/v1/tasks"
    response = wait_until(lambda: get_while_running(container_name, url), timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


def test_the_operator_leads_from_the_image_with_a_read_only_root_filesystem(
    built_images: dict[str, str],
    embedded_kube: EmbeddedKube,
    writable_tmp: Path,
    container_name: str,
) -> None:
    namespace = embedded_kube.new_namespace("image-operator").name
    port = free_port()
    start_control_plane(
        built_images["control-plane"],
        container_name,
        embedded_kube,
        writable_tmp,
        {
            "PODTASK_NAMESPACE": namespace,
            "PODTASK_API_URL": "http://127.0.0.1:1",
            "PODTASK_RUNNER_TOKEN_SECRET": "s" * 32,
        },
        *("python", "-m", "podtask_operator", "--liveness", f"http://127.0.0.1:{port}/healthz"),
    )
    url = f"http://127.0.0.1:{port}/healthz"

    def leading() -> bool:
        response = get_while_running(container_name, url)
        return response is not None and response.json()["role"] == "leader"

    # The leader: it took the Lease in Kubernetes and started its handlers.
    wait_until(leading, timeout=60)
    assert podman("logs", container_name).returncode == 0
