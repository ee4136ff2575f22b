"""`podtask dev --runtime containers`: attempts run in their images under podman, with the
kernel enforcing the machine's limits (issue 11, acceptance 2 and 3).

The runner image and the examples' image come from `make images`' own code (built once per
test session); the tasks `podtask dev` registers run in the runner image with the source
mounted from this checkout, and a task image built here `FROM` the runner image runs what only
it holds once it is deployed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podtask._cli.devprocess import DevProcess
from podtask_devcluster.image_build import build_image
from podtask_devcluster.podman import tool_env
from tests.clusters import CLUSTERS
from tests.e2e.conftest import ROOT, Stack, start_timeout, wait_until
from tests.e2e.test_deploy import podtask_deploy

DEPLOYED_TASK = '''"""Reads a file that only its task image holds."""

import os
from pathlib import Path

from podtask import task


@task(id="image-only", machine="micro")
def image_only(payload, ctx):
    return {
        "marker": Path(__file__).with_name("marker.txt").read_text().strip(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cwd": os.getcwd(),
    }
'''

TASK_IMAGE = "localhost/podtask-tests/image-only"
TASK_IMAGE_DOCKERFILE = """ARG RUNNER_IMAGE=localhost/podtask/runner:0.1.0
FROM ${RUNNER_IMAGE}
WORKDIR /app
COPY tasks/ tasks/
USER 10001:10001
"""


@contextlib.contextmanager
def container_stack_in(
    tmp_path_factory: pytest.TempPathFactory, name: str, cluster: str
) -> Iterator[Stack]:
    dev = DevProcess(
        [str(ROOT / "examples")],
        tmp_path_factory.mktemp(name) / ".podtask",
        cwd=ROOT,
        cluster=cluster,
        runtime="containers",
        start_timeout=start_timeout(cluster),
    ).start()
    try:
        yield Stack(dev)
    finally:
        dev.stop()


@pytest.fixture(scope="module", params=CLUSTERS)
def container_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    built_images: dict[str, str],
) -> Iterator[Stack]:
    with container_stack_in(tmp_path_factory, "containers", request.param) as stack:
        yield stack


def podman_json(*args: str) -> Any:
    done = subprocess.run(
        ["podman", *args, "--format", "json"],
        env=tool_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout or "null")


def containers_of_pod(uid: str) -> list[str]:
    """Every podman container, running or not, that carries the pod's uid in a label."""
    found = podman_json("ps", "--all") or []
    return [str(c.get("Id")) for c in found if uid in (c.get("Labels") or {}).values()]


def processes_of_run(run_id: str) -> list[int]:
    """Processes whose environment names the run: the runner and anything it started."""
    needle = f"PODTASK_RUN_ID={run_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                found.append(int(entry))
    return found


def kubectl_logs(stack: Stack, pod: str) -> str:
    done = subprocess.run(
        ["kubectl", "logs", pod],
        env=stack.kube_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def test_hello_world_completes_in_the_runner_image_and_leaves_nothing_running(
    container_stack: Stack, built_images: dict[str, str]
) -> None:
    stack = container_stack
    run = stack.wait_for(stack.trigger("hello-world", {"name": "container"}), timeout=120)
    assert run["status"] == "Completed", run
    assert run["output"] == {"message": "hello container"}
    # The run's report completed it; its pod ends a moment later.
    pod = wait_until(
        lambda: (
            found
            if (found := stack.pod(f"{run['id']}-1"))["status"].get("phase") == "Succeeded"
            else None
        ),
        timeout=60,
    )
    assert pod["spec"]["containers"][0]["image"] == built_images["runner"]
    status = pod["status"]["containerStatuses"][0]
    assert status["containerID"].startswith("podman://"), status
    assert status["state"]["terminated"]["reason"] == "Completed", status
    greeting = f"Hello, container! (run {run['id']}, attempt 1)"
    assert greeting in kubectl_logs(stack, pod["metadata"]["name"])
    # The container is removed once it has ended, and nothing it started is left.
    wait_until(lambda: not containers_of_pod(pod["metadata"]["uid"]), timeout=60)
    assert processes_of_run(run["id"]) == []


def test_over_its_memory_the_kernel_kills_it_and_the_retry_runs_on_the_bigger_machine(
    container_stack: Stack,
) -> None:
    stack = container_stack
    run_id = stack.trigger("out-of-memory", {"megabytes": 400}, machine="micro")
    run = stack.wait_for(run_id, timeout=180)
    assert run["status"] == "Completed", run
    first, second = run["attempts"]
    assert (first["machine"], first["reason"], first["exitCode"]) == ("micro", "OOMKilled", 137)
    assert (second["machine"], second["reason"]) == ("medium-1x", "Completed")
    assert run["output"] == {"allocatedMb": 400, "machine": "medium-1x", "attempt": 2}
    killed = stack.pod(f"{run_id}-1")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (killed["reason"], killed["exitCode"]) == ("OOMKilled", 137)


# ------------------------------------------------------------ a deployed task image


@pytest.fixture(scope="module", params=CLUSTERS)
def deploy_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    built_images: dict[str, str],
) -> Iterator[Stack]:
    # A stack of its own: a deploy makes the namespace's tasks exactly the deployed ones.
    with container_stack_in(tmp_path_factory, "deployed", request.param) as stack:
        yield stack


@pytest.fixture
def task_image_context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text(TASK_IMAGE_DOCKERFILE)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "image_only.py").write_text(DEPLOYED_TASK)
    return tmp_path


def build_task_image(context: Path, built_images: dict[str, str], marker: str) -> str:
    (context / "tasks" / "marker.txt").write_text(marker + "\n")
    tag = f"{TASK_IMAGE}:{marker}"
    build_image(context / "Dockerfile", tag, context, {"RUNNER_IMAGE": built_images["runner"]})
    return tag


def test_a_deployed_task_image_runs_what_only_it_holds_and_earlier_runs_keep_theirs(
    deploy_stack: Stack, task_image_context: Path, built_images: dict[str, str]
) -> None:
    stack = deploy_stack
    first_marker, second_marker = f"a{secrets.token_hex(4)}", f"b{secrets.token_hex(4)}"
    first_image = build_task_image(task_image_context, built_images, first_marker)
    try:
        done = podtask_deploy(
            stack.dev, "--image", first_image, "--module", "tasks/", cwd=task_image_context
        )
        assert done.returncode == 0, done.stderr
        assert re.search(r"^image-only\s+tasks/image_only\.py\s", done.stdout, re.M), done.stdout
        # Triggered on the first image and held back until the second is deployed.
        before = stack.trigger("image-only", {}, delay=3600)
        wait_until(lambda: stack.run(before)["status"] == "Delayed")

        second_image = build_task_image(task_image_context, built_images, second_marker)
        done = podtask_deploy(
            stack.dev, "--image", second_image, "--module", "tasks/", cwd=task_image_context
        )
        assert done.returncode == 0, done.stderr

        after = stack.wait_for(stack.trigger("image-only", {}), timeout=120)
        assert after["status"] == "Completed", after
        assert after["output"] == {
            "marker": second_marker,
            "uid": 10001,
            "gid": 10001,
            "cwd": "/app",
        }
        assert stack.pod(f"{after['id']}-1")["spec"]["containers"][0]["image"] == second_image

        response = stack.http.post(f"/api/v1/runs/{before}/reschedule", json={"delay": 0})
        assert response.status_code == 200, response.text
        kept = stack.wait_for(before, timeout=120)
        assert kept["status"] == "Completed", kept
        assert kept["output"]["marker"] == first_marker
        assert stack.pod(f"{before}-1")["spec"]["containers"][0]["image"] == first_image
    finally:
        subprocess.run(
            ["podman", "rmi", "--force", first_image, f"{TASK_IMAGE}:{second_marker}"],
            env=tool_env(),
            capture_output=True,
            timeout=120,
        )
