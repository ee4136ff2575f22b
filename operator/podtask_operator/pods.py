"""`pod_for_attempt`: the pure manifest builder for the one pod of one attempt."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from podtask.machines import machine_preset, pod_resources
from podtask.resources import (
    API_VERSION,
    LABEL_ATTEMPT,
    LABEL_CONCURRENCY_KEY,
    LABEL_MACHINE,
    LABEL_QUEUE,
    LABEL_RUN,
    LABEL_TASK,
    TaskRunSpec,
)
from podtask_operator.settings import OperatorSettings

CONTAINER_NAME = "task"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def pod_name(run_name: str, attempt: int) -> str:
    """Deterministic, so that creating an attempt's pod twice is an AlreadyExists."""
    return f"{run_name}-{attempt}"


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
        "app.kubernetes.io/managed-by": "podtask",
    }
    if spec.concurrency_key is not None:
        labels[LABEL_CONCURRENCY_KEY] = label_value(spec.concurrency_key)
    return labels


def pod_for_attempt(
    run: dict[str, Any],
    spec: TaskRunSpec,
    attempt: int,
    machine: str,
    token: str,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """The pod that runs attempt `attempt` of `run` on `machine`."""
    meta = run["metadata"]
    resources = pod_resources(
        machine_preset(machine),
        cpu_request_ratio=settings.cpu_request_ratio,
        memory_request_ratio=settings.memory_request_ratio,
    )
    env = {
        "PODTASK_API_URL": settings.api_url,
        "PODTASK_RUN_ID": meta["name"],
        "PODTASK_ATTEMPT": str(attempt),
        "PODTASK_ATTEMPT_TOKEN": token,
        "PODTASK_MACHINE": machine,
        "PYTHONUNBUFFERED": "1",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(meta["name"], attempt),
            "namespace": meta["namespace"],
            "labels": attempt_labels(meta["name"], spec, attempt, machine),
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "TaskRun",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
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
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "resources": resources,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            # A read-only root filesystem still leaves tasks a scratch directory.
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }
