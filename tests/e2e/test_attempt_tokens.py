"""An attempt's token through `podtask dev`: the runner and the task get it, `kubectl get pod`
never shows it, and once the attempt has ended it is refused."""

import base64
import subprocess

import httpx

from tests.e2e.conftest import Stack


def _kubectl(stack: Stack, *args: str) -> str:
    done = subprocess.run(
        ["kubectl", *args], env=stack.kube_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_token_is_not_in_the_pod_and_dies_with_its_attempt(stack: Stack) -> None:
    # The parent triggers and reads its children with its token: the runner's and the task's
    # credential both come from the Secret.
    run = stack.wait_for(stack.trigger("parent-task", {"n": 4}), timeout=90)
    assert run["status"] == "Completed", run
    assert run["output"]["child"] == {"doubled": 8, "parentRunId": run["id"]}
    pod = f"{run['id']}-1"

    encoded = _kubectl(
        stack, "get", "secret", f"{pod}-token", "-o", "jsonpath={.data.token}"
    ).strip()
    token = base64.b64decode(encoded).decode()
    assert "." in token  # a signed token, so the searches below can find it
    as_yaml = _kubectl(stack, "get", "pod", pod, "-o", "yaml")
    assert f"name: {pod}-token" in as_yaml  # the pod names the Secret ...
    for shown in (token, encoded, token.split(".")[1]):
        assert shown not in as_yaml  # ... and shows no part of the token
    owner = _kubectl(
        stack, "get", "secret", f"{pod}-token", "-o", "jsonpath={.metadata.ownerReferences[0].name}"
    )
    assert owner == run["id"]

    # The attempt has ended: its token triggers nothing and reads nothing any more.
    with httpx.Client(
        base_url=stack.dev.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as dead:
        for response in (
            dead.post("/api/v1/tasks/child-task/trigger", json={"payload": {"n": 1}}),
            dead.post("/api/v1/tasks/batch", json={"items": [{"task": "child-task"}]}),
            dead.get(f"/api/v1/runs/{run['output']['childRunId']}"),
            dead.get(f"/api/v1/runner/runs/{run['id']}/attempts/1"),
        ):
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "attempt_ended"
