"""`podtask deploy` against `podtask dev`: it registers the examples as a new version, a
trigger afterwards runs on that version, and a run triggered before keeps its own; a bad
declaration or a refusal of the API fails the command with a message that says why.

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
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Stack, start_stack, wait_until

IMAGE = "registry.example.com/team/podtask-examples:1"


@pytest.fixture(scope="module")
def deploy_stack(tmp_path_factory: pytest.TempPathFactory, cluster_kind: str) -> Iterator[Stack]:
    # A stack of its own: a deploy makes the namespace's tasks exactly the deployed ones,
    # which would take the other e2e tests' tasks off the shared stack.
    dev = start_stack(tmp_path_factory.mktemp("deploy") / ".podtask", cluster=cluster_kind)
    try:
        yield Stack(dev)
    finally:
        dev.stop()


def podtask_deploy(
    stack: Stack, *args: str, cwd: Path = ROOT, api_env: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")}
    if api_env:
        env |= {"PODTASK_API_URL": stack.dev.api_url, "PODTASK_API_KEY": stack.dev.api_key}
    return subprocess.run(
        [sys.executable, "-m", "podtask._cli.cli", "deploy", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def kubectl_json(stack: Stack, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        ["kubectl", "get", *args, "-o", "json"],
        env=stack.kube_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def deployed_versions(stack: Stack) -> list[str]:
    response = stack.http.get("/api/v1/deployments")
    assert response.status_code == 200, response.text
    return [d["version"] for d in response.json()["deployments"]]


def test_a_deploy_moves_new_triggers_to_its_version_and_earlier_runs_keep_theirs(
    deploy_stack: Stack,
) -> None:
    stack = deploy_stack
    # Triggered before the deploy and held back until after it: it must still run as it
    # was triggered, from its module path and image of then.
    before = stack.trigger("hello-world", {"name": "before"}, delay=3600)
    wait_until(lambda: stack.run(before)["status"] == "Delayed", timeout=30)
    version_before = stack.run(before)["version"]

    done = podtask_deploy(stack, "--image", IMAGE, "--module", "examples/")
    assert done.returncode == 0, done.stderr
    found = re.match(r"Deployed version (\S+) of (\S+)\n", done.stdout)
    assert found is not None, done.stdout
    version, image = found.groups()
    assert image == IMAGE
    assert version != version_before
    row = re.compile(r"^hello-world\s+examples/hello_world\.py\s+hello-world\s+small-1x$", re.M)
    assert row.search(done.stdout), done.stdout
    assert deployed_versions(stack)[0] == version

    spec = kubectl_json(stack, "task", "hello-world")["spec"]
    assert (spec["image"], spec["version"]) == (IMAGE, version)
    assert spec["module"] == "examples/hello_world.py"

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
    deploy_stack: Stack,
) -> None:
    done = podtask_deploy(stack := deploy_stack, "--image", IMAGE, "--module", "examples/")
    assert done.returncode == 0, done.stderr
    parent = stack.wait_for(stack.trigger("parent-task", {"n": 4}), timeout=90)
    assert parent["status"] == "Completed", parent
    assert parent["output"]["child"]["doubled"] == 8
    child = stack.run(parent["output"]["childRunId"])
    assert child["version"] == parent["version"]


def test_an_invalid_declaration_fails_naming_the_task_and_field_and_deploys_nothing(
    deploy_stack: Stack, tmp_path: Path
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
    deploy_stack: Stack, tmp_path: Path
) -> None:
    outside = str(ROOT / "examples" / "hello_world.py")
    done = podtask_deploy(deploy_stack, "--image", IMAGE, "--module", outside, cwd=tmp_path)
    assert done.returncode == 2, done
    assert "outside the current folder" in done.stderr and "/app" in done.stderr


def test_what_the_api_refuses_fails_with_its_message(deploy_stack: Stack) -> None:
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


def test_without_the_api_address_it_says_what_to_set(deploy_stack: Stack) -> None:
    done = podtask_deploy(deploy_stack, "--image", IMAGE, "--module", "examples/", api_env=False)
    assert done.returncode == 2
    assert "PODTASK_API_URL is not set" in done.stderr
