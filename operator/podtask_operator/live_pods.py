"""The attempts' pods that have not ended, as the pod watch (or the start-up listing) last
showed them: so that a run's watch event is decided without reading its pod again.

Only a pod that shows its attempt still running is handed out (`running`): how a running
attempt is judged does not depend on whether its run was read before or after its pod. A pod
that ended is judged from a read of the run made after it (the runner reports before it
exits), which the pod's own watch event starts. And which changes of a running pod are worth
a look at its attempt (`observe`). Pure: no I/O; bounded by the pods that run.

A pod is kept as `slim_pod` makes it: what judging an attempt reads (its metadata without
`managedFields`, its node and its containers' resources, its whole status). A pod as the API
server sends it is about 40 KB of Python objects, most of it the field managers' record of
the spec and the status; with 500 pods running they were the operator's largest part (p5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podtask._contract.resources import TaskRunStatus
from podtask._contract.wire import LABEL_ATTEMPT
from podtask_operator.attempts import classify_attempt, pod_is_finished
from podtask_operator.pending_pods import PendingVerdict


def slim_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Of `pod`, what `classify_attempt`, `pending_verdict` and the scheduler read."""
    metadata = {k: v for k, v in (pod.get("metadata") or {}).items() if k != "managedFields"}
    spec = pod.get("spec") or {}
    slim_spec: dict[str, Any] = {
        "containers": [
            {"name": c.get("name"), "resources": c.get("resources") or {}}
            for c in spec.get("containers") or []
        ]
    }
    if spec.get("nodeName"):
        slim_spec["nodeName"] = spec["nodeName"]
    return {"metadata": metadata, "spec": slim_spec, "status": pod.get("status") or {}}


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
        # Pods not finished whose last event had something to say (a stall, a deletion):
        # their next event is reconciled too, if only to clear what was said.
        self._noticed: set[str] = set()
        # Pods created here whose watch has not shown them yet (`expect`).
        self._created: set[str] = set()

    def __len__(self) -> int:
        return len(self._pods)

    def observe(
        self, pod: dict[str, Any], verdict: PendingVerdict | None = None, *, deleted: bool = False
    ) -> bool:
        """A pod as a watch event or a read showed it (`verdict`: `pending_verdict`'s on it).
        Whether this change of a pod that has not finished may change its attempt: it cannot
        start, it is being deleted, its node is not ready, or it was one of those."""
        name = pod["metadata"]["name"]
        self._created.discard(name)
        if deleted or pod_is_finished(pod):
            self._pods.pop(name, None)
            self._noticed.discard(name)
            return False
        self._pods[name] = slim_pod(pod)
        if verdict is not None and (
            verdict.notice or verdict.end or pod["metadata"].get("deletionTimestamp")
        ):
            self._noticed.add(name)
            return True
        if name in self._noticed:
            self._noticed.discard(name)
            return True
        return False

    def expect(self, name: str) -> None:
        """A pod just created here: its first watch event may show it ended already."""
        self._created.add(name)

    def ends(self, pod: Mapping[str, Any], *, deleted: bool = False) -> bool:
        """Whether this event (before `observe` takes it) shows the end of a pod seen not
        finished or created here: true once per pod, and never for a pod that ended while no
        operator watched."""
        name = pod["metadata"]["name"]
        ended = deleted or pod_is_finished(pod)
        return ended and self.alive(name)

    def alive(self, name: str) -> bool:
        """Whether the pod `name` was created here or seen, and not seen ended since."""
        return name in self._pods or name in self._created

    def forget(self, name: str) -> None:
        """A read found the pod gone."""
        self._pods.pop(name, None)
        self._created.discard(name)

    def running(self, name: str, status: TaskRunStatus) -> tuple[int, dict[str, Any]] | None:
        """The pod `name` of the run's current attempt, if it was last seen running it."""
        pod = self._pods.get(name)
        if pod is None or attempt_of(pod) != status.attempt:
            return None
        if classify_attempt(pod, None, status.attempt) is not None:
            return None
        return status.attempt, pod
