"""An in-memory namespace behind `podtask_operator.cluster.ClusterApi`: the Kubernetes API
boundary of the reconciler, so that its decisions can be driven step by step without kopf,
an apiserver or a node agent. It keeps what an apiserver keeps for those calls: a
resourceVersion per write (a stale one is refused as `RunChanged`), JSON patches of a run's
status (merge patches of a queue's), AlreadyExists on a second create, and the Events
posted. Pods do nothing by themselves: the test moves them (`pod_ends`).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from podtask._contract.resources import TaskRunSpec
from podtask._contract.wire import API_VERSION, LABEL_RUN
from podtask_devcluster.patches import json_patch, merge_patch
from podtask_operator.cluster import RUN_PAGE, RunChanged
from podtask_operator.kube import NotFound, Transient


class MemoryCluster:
    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []  # (run, type, reason)
        self.deleted_pods: list[str] = []
        # Raised by the next pod creates, one each, before anything is created.
        self.pod_create_errors: list[Exception] = []
        # Pods a ResourceQuota still lets be created (None: no quota); then `quota_exceeded`.
        self.pod_quota: int | None = None
        self.created_pods: list[str] = []
        self.status_writes = 0  # patches of runs' status (the operator's and the API's)
        # The reads the reconciler made, in order: "run/<name>", "pod/<name>".
        self.reads: list[str] = []
        # Reads of these runs are answered once their event is set (a slow apiserver), and
        # the runs whose read waits so now.
        self.held_reads: dict[str, asyncio.Event] = {}
        self.reads_waiting: set[str] = set()
        self._versions = itertools.count(1)

    # --- what a test does ------------------------------------------------------------------

    def add_run(self, name: str, spec: TaskRunSpec, created: datetime) -> None:
        self.runs[name] = {
            "apiVersion": API_VERSION,
            "kind": "TaskRun",
            "metadata": {
                "name": name,
                "namespace": "tasks",
                "uid": f"uid-{name}",
                "creationTimestamp": created.isoformat(),
                "resourceVersion": str(next(self._versions)),
            },
            "spec": spec.to_wire(),
        }

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.runs[name].get("status") or {})

    def pod_ends(self, name: str, exit_code: int, reason: str = "") -> None:
        """The pod's container exits (what the node agent would report)."""
        terminated: dict[str, Any] = {"exitCode": exit_code}
        if reason:
            terminated["reason"] = reason
        self.pods[name]["status"] = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [{"name": "task", "state": {"terminated": terminated}}],
        }
        self._bump(self.pods[name])

    def report(self, name: str, report: dict[str, Any]) -> None:
        """The runner's report, written as the API writes it."""
        self.runs[name].setdefault("status", {})["report"] = report
        self._bump(self.runs[name])

    def report_through_api(self, name: str, report: dict[str, Any], now: datetime) -> None:
        """The runner's report as the API records it: a success completes the run in the same
        write (`podtask_api.reports.report_writes`)."""
        from podtask_api.reports import report_writes

        run = self.runs[name]
        patched = json_patch(run, report_writes(run, report, now))
        run.clear()
        run.update(patched)
        self.status_writes += 1
        self._bump(run)

    def wait(self, name: str, wait: dict[str, Any] | None) -> None:
        """The runner's wait (`status.wait`), or its request to go on, as the API writes it."""
        self.runs[name].setdefault("status", {})["wait"] = wait
        self._bump(self.runs[name])

    def cancel(self, name: str, at: datetime) -> None:
        self.runs[name]["spec"]["cancelRequestedAt"] = at.isoformat()
        self._bump(self.runs[name])

    def _bump(self, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))

    # --- ClusterApi --------------------------------------------------------------------------

    async def get_run(self, name: str) -> dict[str, Any] | None:
        self.reads.append(f"run/{name}")
        held = self.held_reads.get(name)
        if held is not None:
            self.reads_waiting.add(name)
            await held.wait()
            self.reads_waiting.discard(name)
        return copy.deepcopy(self.runs.get(name))

    async def get_config_map(self, name: str) -> dict[str, Any] | None:
        return None

    async def patch_run_status(
        self, name: str, patch: list[dict[str, Any]], *, resource_version: str | None = None
    ) -> None:
        run = self.runs.get(name)
        if run is None:
            raise NotFound(404, "NotFound", f"taskruns {name!r} not found")
        if resource_version is not None and resource_version != run["metadata"]["resourceVersion"]:
            raise RunChanged(f"run {name} changed since version {resource_version}")
        patched = json_patch(run, patch)
        run.clear()
        run.update(patched)
        self.status_writes += 1
        self._bump(run)

    async def get_pod(self, name: str) -> dict[str, Any] | None:
        self.reads.append(f"pod/{name}")
        return copy.deepcopy(self.pods.get(name))

    async def create_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.pod_create_errors:
            raise self.pod_create_errors.pop(0)
        name = body["metadata"]["name"]
        if name not in self.pods:
            if self.pod_quota is not None:
                if self.pod_quota == 0:
                    raise quota_exceeded()
                self.pod_quota -= 1
            self.created_pods.append(name)
            pod = copy.deepcopy(body)
            pod["status"] = {"phase": "Pending"}
            pod["metadata"]["resourceVersion"] = str(next(self._versions))
            self.pods[name] = pod
        return copy.deepcopy(self.pods[name])

    async def create_secret(self, body: dict[str, Any]) -> None:
        self.secrets.setdefault(body["metadata"]["name"], copy.deepcopy(body))

    async def run_pages(self, limit: int = RUN_PAGE) -> AsyncIterator[list[dict[str, Any]]]:
        runs = [copy.deepcopy(run) for run in self.runs.values()]
        for start in range(0, len(runs), limit):
            yield runs[start : start + limit]

    async def list_queues(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(queue) for queue in self.queues.values()]

    async def list_pods(self, label_selector: str) -> list[dict[str, Any]]:
        assert label_selector == LABEL_RUN
        return [
            copy.deepcopy(p) for p in self.pods.values() if LABEL_RUN in p["metadata"]["labels"]
        ]

    async def delete_pod(self, name: str) -> None:
        if self.pods.pop(name, None) is not None:
            self.deleted_pods.append(name)

    async def patch_queue_status(self, name: str, status: dict[str, Any]) -> bool:
        queue = self.queues.get(name)
        if queue is None:
            return False
        queue["status"] = merge_patch(queue.get("status") or {}, status)
        return True

    async def post_event(
        self, run: dict[str, Any], type_: str, reason: str, message: str, now: datetime
    ) -> None:
        self.events.append((run["metadata"]["name"], type_, reason))


def quota_exceeded() -> Transient:
    """What `Kube` raises when a ResourceQuota refuses a pod for now."""
    return Transient(403, "QuotaExceeded", "exceeded quota: pods, limited: pods=2")
