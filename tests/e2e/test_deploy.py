"""`podtask deploy` against the operator and the API on a cluster (composed as an
installation runs them): it registers the examples as a new version, a trigger afterwards
runs on that version, and a run triggered before keeps its own; a bad declaration or a
refusal of the API fails the command with a message that says why. `podtask dev`'s API
refuses a deployment, saying to deploy to a cluster's.

The deploys run from the repository root with `--module examples/`, as CI would run them
next to `docker build -f examples/Dockerfile .`: the manifest names `examples/hello_world.py`,
which the dev kubelet resolves from the folder `podtask dev` started in (the root) and the
runner image from its WORKDIR (/app, where examples/Dockerfile copies `examples/`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import ROOT, Stack, wait_until

IMAGE = "registry.example.com/team/podtask-examples:1"


class ApiAddress(Protocol):
    @property
    def api_url(self) -> str: ...
    @property
    def api_key(self) -> str: ...


class Installation:
    """The operator and the API composed on a cluster, with the examples registered: what a
    deploy targets (`podtask dev`'s API takes none)."""

    def __init__(self, composed: ComposedStack) -> None:
        self.composed = composed
        self.api_url = composed.api_url
        self.api_key = composed.api_key
        self.http = httpx.Client(
            base_url=self.api_url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30
        )
        self.kube_env = {**os.environ, "KUBECONFIG": str(composed.cluster.kubeconfig_path)}

    def trigger(self, task_id: str, payload: Any, **options: Any) -> str:
        return self.composed.trigger(task_id, payload, **options)

    def run(self, run_id: str) -> dict[str, Any]:
        return self.composed.run(run_id)

    def wait_for(self, run_id: str, timeout: float = 60) -> dict[str, Any]:
        return self.composed.wait_for(run_id, timeout)

    def pod(self, name: str) -> dict[str, Any]:
        return kubectl_json(self, "pod", name)


@pytest.fixture(scope="module")
def deploy_stack(
    tmp_path_factory: pytest.TempPathFactory, cluster_kind: str
) -> Iterator[Installation]:
    # A stack of its own: a deploy makes the namespace's tasks exactly the deployed ones.
    composed = ComposedStack(
        tmp_path_factory.mktemp("deploy"), [str(ROOT / "examples")], cluster_kind=cluster_kind
    )
    composed.start()
    try:
        yield Installation(composed)
    finally:
        composed.stop()


def podtask_deploy(
    target: ApiAddress, *args: str, cwd: Path = ROOT, api_env: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")}
    if api_env:
        env |= {"PODTASK_API_URL": target.api_url, "PODTASK_API_KEY": target.api_key}
    return subprocess.run(
        [sys.executable, "-m", "podtask._cli.cli", "deploy", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def kubectl_json(stack: Installation | Stack, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        ["kubectl", "get", *args, "-o", "json"],
        env=stack.kube_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def deployed_versions(stack: Installation | Stack) -> list[str]:
    response = stack.http.get("/api/v1/deployments")
    assert response.status_code == 200, response.text
    return [d["version"] for d in response.json()["deployments"]]


def test_a_deploy_moves_new_triggers_to_its_version_and_earlier_runs_keep_theirs(
    deploy_stack: Installation,
) -> None:
    stack = deploy_stack
    # Triggered before the deploy and held back until after it: it must still run as it
    # was triggered, from its module path and image of then.
    before = stack.trigger("hello-world", {"name": "before"}, delay=3600)
    wait_until(lambda: stack.run(before)["status"] == "Delayed")
    version_before = stack.run(before)["version"]

    done = podtask_deploy(stack, "--image", IMAGE, "--module", "examples/")
    assert done.returncode == 0, done.stderr
    found = re.match(r"Deployed version (\S+) of (\S+)\n", done.stdout)
    assert found is not None, done.stdout
    version, image = found.groups()
    assert image == IMAGE
    assert version != version_before
    row = re.compile(r"^hello-world\s+examples/hello_world\.py\s+hello-world\s+small-1x\s+-$", re.M)
    assert row.search(done.stdout), done.stdout
    assert deployed_versions(stack)[0] == version

    spec = kubectl_json(stack, "task", "hello-world")["spec"]
    assert (spec["image"], spec["version"]) == (IMAGE, version)
    assert spec["module"] == "examples/hello_world.py"
    # A payload model's JSON schema is kept with its task (the dashboard's Test page reads it).
    hooks = kubectl_json(stack, "task", "lifecycle-hooks")["spec"]
    assert hooks["payloadSchema"]["title"] == "Greeting"
    assert hooks["payloadSchema"]["required"] == ["name"]
    listed = {task["id"]: task for task in stack.http.get("/api/v1/tasks").json()["data"]}
    assert listed["lifecycle-hooks"]["payloadSchema"] == hooks["payloadSchema"]
    assert listed["hello-world"]["payloadSchema"] is None

    after = stack.wait_for(stack.trigger("hello-world", {"name": "after"}))
    assert after["status"] == "Completed", after
    assert after["version"] == version
    assert after["output"] == {"message": "hello after"}
    assert stack.pod(f"{after['id']}-1")["spec"]["containers"][0]["image"] == IMAGE

    response = stack.http.post(f"/api/v1/runs/{before}/reschedule", json={"delay": 0})
    assert response.status_code == 200, response.text
    kept = stack.wait_for(before)
    assert kept["status"] == "Completed", kept
    assert kept["version"] == version_before
    assert stack.pod(f"{before}-1")["spec"]["containers"][0]["image"] != IMAGE


def test_a_parent_on_the_deployed_version_triggers_children_from_the_image_paths(
    deploy_stack: Installation,
) -> None:
    done = podtask_deploy(stack := deploy_stack, "--image", IMAGE, "--module", "examples/")
    assert done.returncode == 0, done.stderr
    parent = stack.wait_for(stack.trigger("parent-task", {"n": 4}), timeout=90)
    assert parent["status"] == "Completed", parent
    assert parent["output"]["child"]["doubled"] == 8
    child = stack.run(parent["output"]["childRunId"])
    assert child["version"] == parent["version"]


def test_an_invalid_declaration_fails_naming_the_task_and_field_and_deploys_nothing(
    deploy_stack: Installation, tmp_path: Path
) -> None:
    (tmp_path / "bad_tasks.py").write_text(
        "from podtask import task\n\n"
        "@task(id='too-big', machine='huge-9x')\n"
        "def too_big(payload, ctx):\n"
        "    return None\n"
    )
    versions = deployed_versions(deploy_stack)
    done = podtask_deploy(deploy_stack, "--image", IMAGE, "--module", "bad_tasks.py", cwd=tmp_path)
    assert done.returncode == 2, done
    assert "too-big" in done.stderr and "machine" in done.stderr and "huge-9x" in done.stderr
    assert done.stdout == ""
    assert deployed_versions(deploy_stack) == versions


def test_a_module_outside_the_current_folder_is_refused(
    deploy_stack: Installation, tmp_path: Path
) -> None:
    outside = str(ROOT / "examples" / "hello_world.py")
    done = podtask_deploy(deploy_stack, "--image", IMAGE, "--module", outside, cwd=tmp_path)
    assert done.returncode == 2, done
    assert "outside the current folder" in done.stderr and "/app" in done.stderr


def test_what_the_api_refuses_fails_with_its_message(deploy_stack: Installation) -> None:
    bad_image = podtask_deploy(deploy_stack, "--image", "Not An Image", "--module", "examples/")
    assert bad_image.returncode == 1, bad_image
    assert "image" in bad_image.stderr and "not an image reference" in bad_image.stderr

    first = podtask_deploy(
        deploy_stack, "--image", IMAGE, "--module", "examples/", "--version", "e2e-once", "--json"
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["version"] == "e2e-once"
    again = podtask_deploy(
        deploy_stack, "--image", IMAGE, "--module", "examples/", "--version", "e2e-once"
    )
    assert again.returncode == 1, again
    assert "'e2e-once' is already deployed" in again.stderr


def test_without_the_api_address_it_says_what_to_set(deploy_stack: Installation) -> None:
    done = podtask_deploy(deploy_stack, "--image", IMAGE, "--module", "examples/", api_env=False)
    assert done.returncode == 2
    assert "PODTASK_API_URL is not set" in done.stderr


def test_podtask_dev_refuses_a_deploy_and_keeps_its_own_tasks(stack: Stack) -> None:
    # Its tasks are the modules it serves from this machine: a deployed manifest would
    # replace them, and their runs would fail on module files it does not have.
    tasks_before = sorted(t["metadata"]["name"] for t in kubectl_json(stack, "tasks")["items"])
    done = podtask_deploy(stack.dev, "--image", IMAGE, "--module", "examples/")
    assert done.returncode == 1, done
    assert "`podtask dev` server" in done.stderr and "PODTASK_API_URL" in done.stderr
    assert "dev_server" in done.stderr and done.stdout == ""
    tasks_after = sorted(t["metadata"]["name"] for t in kubectl_json(stack, "tasks")["items"])
    assert tasks_after == tasks_before
    assert deployed_versions(stack) == []
