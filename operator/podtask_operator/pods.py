"""The pure manifest builders for one attempt: its pod (`pod_for_attempt`) and the Secret
that holds its token (`token_secret_for_attempt`).

The token reaches the runner as an environment variable the kubelet fills from the Secret
(`secretKeyRef`), so the pod's spec names the Secret and never holds the token: whoever
may read pods (`kubectl get pod -o yaml`) cannot read it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import PurePosixPath
from typing import Any

from podtask._contract.machines import machine_preset, pod_resources
from podtask._contract.resources import TaskRunSpec
from podtask._contract.wire import (
    API_VERSION,
    ENV_API_URL,
    ENV_ATTEMPT,
    ENV_ATTEMPT_TOKEN,
    ENV_RUN_ID,
    LABEL_ATTEMPT,
    LABEL_CONCURRENCY_KEY,
    LABEL_MACHINE,
    LABEL_MANAGED_BY,
    LABEL_QUEUE,
    LABEL_RUN,
    LABEL_TASK,
    MANAGED_BY,
    TASK_RUN_KIND,
)
from podtask_operator.settings import OperatorSettings

CONTAINER_NAME = "task"
DEV_SOURCE_VOLUME = "dev-source"
TOKEN_KEY = "token"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def pod_name(run_name: str, attempt: int) -> str:
    """Deterministic, so that creating an attempt's pod twice is an AlreadyExists."""
    return f"{run_name}-{attempt}"


def token_secret_name(run_name: str, attempt: int) -> str:
    """Deterministic, like the pod's: a retried start finds the Secret it created before."""
    return f"{pod_name(run_name, attempt)}-token"


def label_value(value: str) -> str:
    """A label-safe form of `value`: itself when valid, else a stable digest of it."""
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    return "h-" + hashlib.sha256(value.encode()).hexdigest()[:40]


def attempt_labels(run_name: str, spec: TaskRunSpec, attempt: int, machine: str) -> dict[str, str]:
    labels = {
        LABEL_TASK: label_value(spec.task_id),
        LABEL_QUEUE: label_value(spec.queue.name),
        LABEL_RUN: run_name,
        LABEL_ATTEMPT: str(attempt),
        LABEL_MACHINE: machine,
    }
    if spec.concurrency_key is not None:
        labels[LABEL_CONCURRENCY_KEY] = label_value(spec.concurrency_key)
    return labels


def _owned_by(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run as owner: the garbage collector deletes what it owns along with it."""
    meta = run["metadata"]
    return [
        {
            "apiVersion": API_VERSION,
            "kind": TASK_RUN_KIND,
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _attempt_object(
    run: dict[str, Any], kind: str, name: str, labels: dict[str, str]
) -> dict[str, Any]:
    """The head of a core (v1) object made for an attempt of `run`: in the run's namespace,
    labelled as podtask's, owned by the run."""
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": run["metadata"]["namespace"],
            "labels": {**labels, LABEL_MANAGED_BY: MANAGED_BY},
            "ownerReferences": _owned_by(run),
        },
    }


def dev_source_mount(module: str, source_dir: str | None) -> str | None:
    """The folder a pod of `module` mounts from this machine (`podtask dev`'s source), or None.

    `podtask dev` registers its task modules by absolute path; a container finds such a file
    only when the folder that holds it is mounted at the same path. A deployed task names its
    module relative to the image's working directory and mounts nothing: it runs what its
    image holds.
    """
    if source_dir is None or not module.startswith("/"):
        return None
    root = PurePosixPath(source_dir)
    return source_dir if PurePosixPath(module).is_relative_to(root) else None


def token_secret_for_attempt(run: dict[str, Any], attempt: int, token: str) -> dict[str, Any]:
    """The Secret that holds attempt `attempt`'s token for its pod; it goes with the run."""
    name = run["metadata"]["name"]
    labels = {LABEL_RUN: name, LABEL_ATTEMPT: str(attempt)}
    return {
        **_attempt_object(run, "Secret", token_secret_name(name, attempt), labels),
        "type": "Opaque",
        # Never changed: the kubelet need not watch it, and no one can swap the token.
        "immutable": True,
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def pod_for_attempt(
    run: dict[str, Any],
    spec: TaskRunSpec,
    attempt: int,
    machine: str,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """The pod that runs attempt `attempt` of `run` on `machine`; its token comes from the
    attempt's Secret (`token_secret_for_attempt`), which must exist before the pod starts."""
    meta = run["metadata"]
    resources = pod_resources(
        machine_preset(machine),
        cpu_request_ratio=settings.cpu_request_ratio,
        memory_request_ratio=settings.memory_request_ratio,
    )
    env = {
        ENV_API_URL: settings.api_url,
        ENV_RUN_ID: meta["name"],
        ENV_ATTEMPT: str(attempt),
        "PYTHONUNBUFFERED": "1",
    }
    source = dev_source_mount(spec.module, settings.dev_source_dir)
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    # A read-only root filesystem still leaves tasks a scratch directory.
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    container_extra: dict[str, Any] = {}
    if source is not None:
        mounts.append({"name": DEV_SOURCE_VOLUME, "mountPath": source, "readOnly": True})
        volumes.append(
            {"name": DEV_SOURCE_VOLUME, "hostPath": {"path": source, "type": "Directory"}}
        )
        # Where `podtask dev` runs the runner as a process: dotted names import from there.
        container_extra["workingDir"] = source
    token_from_secret = {
        "name": ENV_ATTEMPT_TOKEN,
        "valueFrom": {
            "secretKeyRef": {"name": token_secret_name(meta["name"], attempt), "key": TOKEN_KEY}
        },
    }
    labels = attempt_labels(meta["name"], spec, attempt, machine)
    return {
        **_attempt_object(run, "Pod", pod_name(meta["name"], attempt), labels),
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": settings.termination_grace_seconds,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": settings.run_as_user,
                "runAsGroup": settings.run_as_user,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": CONTAINER_NAME,
                    "image": spec.image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": list(settings.runner_command),
                    "env": [
                        *({"name": k, "value": v} for k, v in env.items()),
                        token_from_secret,
                    ],
                    "resources": resources,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": mounts,
                    **container_extra,
                }
            ],
            "volumes": volumes,
        },
    }
