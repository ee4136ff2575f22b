"""The attempt pod's manifest: valid Kubernetes, sized from the preset, locked down; its
token in a Secret of its own, never in the pod."""

import base64
import json
from typing import Any

import kubernetes_validate
import pytest

from podtask._authoring.manifest import is_valid_queue_name
from podtask._contract.limits import MAX_QUEUE_NAME_LENGTH
from podtask._contract.machines import machine_preset, pod_resources
from podtask._contract.resources import QueueRef, TaskRunSpec
from podtask._contract.wire import LABEL_QUEUE
from podtask_operator.pods import label_value, pod_for_attempt, token_secret_for_attempt
from podtask_operator.queues import bucket_of
from podtask_operator.settings import OperatorSettings
from podtask_runner.__main__ import RunnerEnvironment
from tests.kubernetes_versions import SUPPORTED_KUBERNETES_VERSIONS


def _pod(
    run: dict[str, Any], spec: TaskRunSpec, settings: OperatorSettings, machine: str = "medium-1x"
) -> dict[str, Any]:
    return pod_for_attempt(run, spec, 2, machine, settings)


@pytest.mark.parametrize("k8s_version", SUPPORTED_KUBERNETES_VERSIONS)
def test_pod_is_valid_against_the_official_schema(
    run: dict[str, Any], spec: TaskRunSpec, settings: OperatorSettings, k8s_version: str
) -> None:
    kubernetes_validate.validate(_pod(run, spec, settings), k8s_version, strict=True)
    secret = token_secret_for_attempt(run, 2, "tok.sig")
    kubernetes_validate.validate(secret, k8s_version, strict=True)


@pytest.mark.parametrize("machine", ["micro", "small-1x", "medium-1x", "large-2x"])
def test_resources_follow_the_preset(
    run: dict[str, Any], spec: TaskRunSpec, settings: OperatorSettings, machine: str
) -> None:
    container = _pod(run, spec, settings, machine)["spec"]["containers"][0]
    preset = machine_preset(machine)
    assert container["resources"] == pod_resources(preset, cpu_request_ratio=0.75)
    limits = container["resources"]["limits"]
    assert limits["cpu"] == f"{round(preset.cpu * 1000)}m"
    assert limits["memory"] == f"{round(preset.memory_gb * 1024)}Mi"


def test_identity_ownership_and_security(
    run: dict[str, Any], spec: TaskRunSpec, settings: OperatorSettings
) -> None:
    pod = _pod(run, spec, settings)
    meta = pod["metadata"]
    assert meta["name"] == "run-abc123-2"
    assert meta["namespace"] == "tasks"
    assert meta["labels"]["podtask.dev/run"] == "run-abc123"
    assert meta["labels"]["podtask.dev/attempt"] == "2"
    assert meta["labels"]["podtask.dev/task"] == "hello-world"
    assert meta["labels"]["podtask.dev/queue"] == "emails"
    assert meta["labels"]["podtask.dev/machine"] == "medium-1x"
    assert meta["labels"]["podtask.dev/concurrency-key"] == label_value("user/42 with spaces")
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("TaskRun", "0000-1111", True)
    podspec = pod["spec"]
    assert podspec["restartPolicy"] == "Never"
    assert podspec["automountServiceAccountToken"] is False
    assert podspec["securityContext"]["runAsNonRoot"] is True
    container = podspec["containers"][0]
    assert container["image"] == "registry.example/tasks:v3"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PODTASK_RUN_ID"] == "run-abc123"
    assert env["PODTASK_ATTEMPT"] == "2"
    assert env["PODTASK_API_URL"] == settings.api_url


def test_the_token_is_in_the_attempts_secret_and_the_pod_only_names_it(
    run: dict[str, Any], spec: TaskRunSpec, settings: OperatorSettings
) -> None:
    token = "claims.signature"
    secret = token_secret_for_attempt(run, 2, token)
    meta = secret["metadata"]
    assert (meta["name"], meta["namespace"]) == ("run-abc123-2-token", "tasks")
    assert meta["labels"]["podtask.dev/run"] == "run-abc123"
    assert meta["labels"]["podtask.dev/attempt"] == "2"
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("TaskRun", "run-abc123", "0000-1111")
    assert secret["immutable"] is True
    assert base64.b64decode(secret["data"]["token"]).decode() == token

    pod = _pod(run, spec, settings)
    (variable,) = [e for e in pod["spec"]["containers"][0]["env"] if "valueFrom" in e]
    assert variable == {
        "name": "PODTASK_ATTEMPT_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "run-abc123-2-token", "key": "token"}},
    }
    assert token not in json.dumps(pod)


def test_the_runner_starts_from_the_environment_its_pod_is_given(
    run: dict[str, Any], spec: TaskRunSpec, settings: OperatorSettings
) -> None:
    # The operator and the runner spell the pod's environment from one vocabulary; here the
    # kubelet's part (the token from its Secret) is played by hand.
    container = _pod(run, spec, settings)["spec"]["containers"][0]
    env = {e["name"]: e.get("value") or "claims.signature" for e in container["env"]}
    runner = RunnerEnvironment.from_env(env)
    assert (runner.run_id, runner.attempt, runner.api_url) == ("run-abc123", 2, settings.api_url)
    assert runner.token == "claims.signature"


def test_label_values_stay_valid() -> None:
    assert label_value("emails") == "emails"
    hashed = label_value("user/42 with spaces")
    assert hashed.startswith("h-") and len(hashed) <= 63
    assert label_value("x" * 64) != "x" * 64


def test_a_queue_is_one_name_for_its_pods_label_its_bucket_and_its_taskqueue(
    run: dict[str, Any], spec: TaskRunSpec, settings: OperatorSettings
) -> None:
    # The operator applies a TaskQueue (pause, limit) by its name to the bucket its pods'
    # label names: every name a declaration may take must be its own label value.
    longest = "long." + "q" * 53 + ".name"
    assert len(longest) == MAX_QUEUE_NAME_LENGTH
    assert is_valid_queue_name(longest) and not is_valid_queue_name(longest + "q")
    on_longest = spec.model_copy(update={"queue": QueueRef(name=longest, concurrency_limit=1)})
    assert _pod(run, on_longest, settings)["metadata"]["labels"][LABEL_QUEUE] == longest
    assert bucket_of(on_longest)[0] == longest


@pytest.mark.parametrize("k8s_version", SUPPORTED_KUBERNETES_VERSIONS)
def test_a_dev_task_mounts_its_source_read_only_and_starts_there(
    run: dict[str, Any], spec: TaskRunSpec, settings: OperatorSettings, k8s_version: str
) -> None:
    dev = settings.model_copy(update={"dev_source_dir": "/home/ana/tasks"})
    live = spec.model_copy(update={"module": "/home/ana/tasks/jobs/report.py"})
    pod = _pod(run, live, dev)
    kubernetes_validate.validate(pod, k8s_version, strict=True)
    container = pod["spec"]["containers"][0]
    assert container["workingDir"] == "/home/ana/tasks"
    assert {"name": "dev-source", "mountPath": "/home/ana/tasks", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {
        "name": "dev-source",
        "hostPath": {"path": "/home/ana/tasks", "type": "Directory"},
    } in pod["spec"]["volumes"]
    # The scratch directory stays.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


@pytest.mark.parametrize(
    ("module", "source_dir"),
    [
        ("examples/hello_world.py", "/home/ana/tasks"),  # deployed: relative to the image
        ("jobs.report", "/home/ana/tasks"),  # a dotted name: the image's too
        ("/home/ana/other/report.py", "/home/ana/tasks"),  # outside the source
        ("/home/ana/tasks-old/report.py", "/home/ana/tasks"),  # a prefix is not a parent
        ("/home/ana/tasks/report.py", None),  # not `podtask dev`
    ],
)
def test_other_tasks_mount_nothing_and_run_what_their_image_holds(
    run: dict[str, Any],
    spec: TaskRunSpec,
    settings: OperatorSettings,
    module: str,
    source_dir: str | None,
) -> None:
    dev = settings.model_copy(update={"dev_source_dir": source_dir})
    pod = _pod(run, spec.model_copy(update={"module": module}), dev)
    container = pod["spec"]["containers"][0]
    assert "workingDir" not in container
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["tmp"]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
