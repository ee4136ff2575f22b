"""What housekeeping's sweeps decide from, kept from the watch events the operator receives
anyway: of each TaskRun and attempt pod, only the fields `housekeeping`'s rules read.

A sweep used to list every TaskRun and pod of the namespace: work and memory in proportion to
everything retained (10,000 runs parsed whole every interval), not to what changed. The index
keeps slim copies instead, and only of the objects a rule can concern: finished pods (the
pods that may be due), final runs (the runs that may be due; a pod's run not found is kept,
as one not final is) and the runs of a batch (a committed batch's marker goes once none of
its runs is left). Pure: no I/O. Filled by kopf's watches, which list everything when they
start, so a restarted operator knows it all again; an object deleted while a watch was down
(no event) is dropped when a sweep finds it gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podtask._contract.batch_markers import LABEL_BATCH
from podtask._contract.wire import LABEL_RUN
from podtask_operator.housekeeping import FINISHED_POD_PHASES, run_is_final


def _slim_metadata(metadata: Mapping[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    slim: dict[str, Any] = {
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "creationTimestamp": metadata.get("creationTimestamp"),
    }
    if metadata.get("deletionTimestamp"):
        slim["deletionTimestamp"] = metadata["deletionTimestamp"]
    if labels:
        slim["labels"] = labels
    return slim


def slim_run(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the sweep's rules read of a run; None for a run no rule concerns now (not final,
    not in a batch)."""
    metadata = run.get("metadata") or {}
    batch = (metadata.get("labels") or {}).get(LABEL_BATCH)
    if not batch and not run_is_final(run):
        return None
    slim = _slim_metadata(metadata, {LABEL_BATCH: batch} if batch else {})
    owners = [
        {"kind": ref.get("kind"), "name": ref.get("name"), "uid": ref.get("uid")}
        for ref in metadata.get("ownerReferences") or []
        if ref.get("kind") == "ConfigMap"
    ]
    if owners:
        slim["ownerReferences"] = owners
    status = run.get("status") or {}
    return {
        "metadata": slim,
        "status": {"phase": status.get("phase"), "finishedAt": status.get("finishedAt")},
    }


def _finish_times(status: Mapping[str, Any]) -> dict[str, Any]:
    """The container and condition times `housekeeping.pod_finished_at` reads."""
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    return {
        "containerStatuses": [
            {"state": {"terminated": {"finishedAt": terminated.get("finishedAt")}}}
            for c in containers
            if (terminated := (c.get("state") or {}).get("terminated"))
        ],
        "conditions": [
            {"lastTransitionTime": c.get("lastTransitionTime")}
            for c in status.get("conditions") or []
        ],
    }


def slim_pod(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the sweep's rules read of an attempt pod; None while it has not finished."""
    status = pod.get("status") or {}
    if status.get("phase") not in FINISHED_POD_PHASES:
        return None
    metadata = pod.get("metadata") or {}
    run = (metadata.get("labels") or {}).get(LABEL_RUN)
    return {
        "metadata": _slim_metadata(metadata, {LABEL_RUN: run} if run else {}),
        "status": {"phase": status["phase"], **_finish_times(status)},
    }


class SweepIndex:
    def __init__(self) -> None:
        self._runs: dict[str, dict[str, Any]] = {}
        self._pods: dict[str, dict[str, Any]] = {}

    @staticmethod
    def _keep(
        into: dict[str, dict[str, Any]], name: str, slim: dict[str, Any] | None, deleted: bool
    ) -> None:
        if deleted or slim is None:
            into.pop(name, None)
        else:
            into[name] = slim

    def observe_run(self, run: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A TaskRun as its watch event showed it."""
        self._keep(self._runs, run["metadata"]["name"], slim_run(run), deleted)

    def observe_pod(self, pod: Mapping[str, Any], *, deleted: bool = False) -> None:
        """An attempt pod as its watch event showed it."""
        self._keep(self._pods, pod["metadata"]["name"], slim_pod(pod), deleted)

    def forget_run(self, name: str) -> None:
        self._runs.pop(name, None)

    def forget_pod(self, name: str) -> None:
        self._pods.pop(name, None)

    def runs(self) -> list[dict[str, Any]]:
        return list(self._runs.values())

    def pods(self) -> list[dict[str, Any]]:
        return list(self._pods.values())
