"""What housekeeping's sweeps decide from, kept from the watch events the operator receives
anyway: of each TaskRun and attempt pod, only the fields `housekeeping`'s rules read.

A sweep used to list every TaskRun and pod of the namespace: work and memory in proportion to
everything retained (10,000 runs parsed whole every interval), not to what changed. The index
keeps slim copies instead, and only of the objects a rule can concern: finished pods (the
pods that may be due) and final runs (the runs that may be due; a pod's run not found is kept,
as one not final is); and of the runs of a batch, only which batch (a committed batch's
marker goes once none of its runs is left). Pure: no I/O. Filled by kopf's watches, which
list everything when they start, so a restarted operator knows it all again; an object
deleted while a watch was down (no event) is dropped when a sweep finds it gone. An index
lags the cluster (events not handled yet, or not since a restart), so the one rule that
concludes from an absence, a committed batch with no run left, is confirmed with the API
server before its marker goes (`housekeeping.sweep_once`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podtask._contract.batch_markers import batch_owner
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
    """What the sweep's rules read of a final run; None for a run not final."""
    if not run_is_final(run):
        return None
    status = run.get("status") or {}
    return {
        "metadata": _slim_metadata(run.get("metadata") or {}, {}),
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


def _keep(into: dict[str, dict[str, Any]], name: str, slim: dict[str, Any] | None) -> None:
    if slim is None:
        into.pop(name, None)
    else:
        into[name] = slim


class SweepIndex:
    def __init__(self) -> None:
        self._final_runs: dict[str, dict[str, Any]] = {}
        self._pods: dict[str, dict[str, Any]] = {}
        # The runs of each batch (by its marker's uid), and the batch of each run in one.
        self._batches: dict[str, set[str]] = {}
        self._batch_of: dict[str, str] = {}

    def observe_run(self, run: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A TaskRun as its watch event showed it."""
        name = run["metadata"]["name"]
        _keep(self._final_runs, name, None if deleted else slim_run(run))
        owner = None if deleted else batch_owner(run)
        if owner is None:
            self._leave_batch(name)
        elif self._batch_of.get(name) != owner.uid:
            self._leave_batch(name)
            self._batch_of[name] = owner.uid
            self._batches.setdefault(owner.uid, set()).add(name)

    def _leave_batch(self, name: str) -> None:
        uid = self._batch_of.pop(name, None)
        if uid is not None:
            names = self._batches[uid]
            names.discard(name)
            if not names:
                del self._batches[uid]

    def observe_pod(self, pod: Mapping[str, Any], *, deleted: bool = False) -> None:
        """An attempt pod as its watch event showed it."""
        _keep(self._pods, pod["metadata"]["name"], None if deleted else slim_pod(pod))

    def forget_run(self, name: str) -> None:
        """A sweep found the run gone (or deleted it)."""
        self._final_runs.pop(name, None)
        self._leave_batch(name)

    def forget_pod(self, name: str) -> None:
        self._pods.pop(name, None)

    def runs(self) -> list[dict[str, Any]]:
        """The final runs."""
        return list(self._final_runs.values())

    def pods(self) -> list[dict[str, Any]]:
        """The finished attempt pods."""
        return list(self._pods.values())

    def runs_per_batch(self) -> dict[str, int]:
        """How many runs each batch has left, by its marker's uid."""
        return {uid: len(names) for uid, names in self._batches.items()}
