"""The attempts' pods that have not ended, as the pod watch (or the start-up listing) last
showed them: so that a run's watch event is decided without reading its pod again.

Only a pod that shows its attempt still running is handed out (`running`): how a running
attempt is judged does not depend on whether its run was read before or after its pod. A pod
that ended is judged from a read of the run made after it (the runner reports before it
exits), which the pod's own watch event starts. Pure: no I/O; bounded by the pods that run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podtask._contract.resources import TaskRunStatus
from podtask._contract.wire import LABEL_ATTEMPT
from podtask_operator.attempts import classify_attempt, pod_is_finished


def attempt_of(pod: Mapping[str, Any]) -> int | None:
    """The attempt a pod runs, from its label; None for a pod without a valid one."""
    value = (pod.get("metadata", {}).get("labels") or {}).get(LABEL_ATTEMPT)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class LivePods:
    def __init__(self) -> None:
        self._pods: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._pods)

    def observe(self, pod: dict[str, Any], *, deleted: bool = False) -> None:
        """A pod as a watch event or a read showed it."""
        name = pod["metadata"]["name"]
        if deleted or pod_is_finished(pod):
            self._pods.pop(name, None)
        else:
            self._pods[name] = pod

    def forget(self, name: str) -> None:
        """A read found the pod gone."""
        self._pods.pop(name, None)

    def running(self, name: str, status: TaskRunStatus) -> tuple[int, dict[str, Any]] | None:
        """The pod `name` of the run's current attempt, if it was last seen running it."""
        pod = self._pods.get(name)
        if pod is None or attempt_of(pod) != status.attempt:
            return None
        if classify_attempt(pod, None, status.attempt) is not None:
            return None
        return status.attempt, pod
