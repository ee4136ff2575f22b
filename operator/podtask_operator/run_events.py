"""The Kubernetes Event that explains a TaskRun's change (`kubectl describe taskrun` shows it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from podtask._contract.wire import API_VERSION, TASK_RUN_KIND

# kube-apiserver refuses an Event whose message is longer (events.k8s.io: note ≤ 1 KiB).
MAX_EVENT_MESSAGE = 1024
SOURCE = "podtask-operator"


def run_event(
    run: dict[str, Any], namespace: str, type_: str, reason: str, message: str, now: datetime
) -> dict[str, Any]:
    """A core/v1 Event on the TaskRun `run`, of `type_` (Normal or Warning)."""
    meta = run["metadata"]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": TASK_RUN_KIND,
            "name": meta["name"],
            "namespace": namespace,
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:MAX_EVENT_MESSAGE],
        "source": {"component": SOURCE},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
