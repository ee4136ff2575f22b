"""The embedded cluster's scheduler: binds each new pod of `default-scheduler` to a Node, as
kube-scheduler does (the `pods/binding` write: spec.nodeName and PodScheduled=True, and a
`Scheduled` Event from default-scheduler). With no Node that can take pods (none registered
yet, none Ready, all cordoned) the pod stays Pending with PodScheduled=False, reason
Unschedulable, and a `FailedScheduling` Event, and is bound as soon as a Node is Ready.

No resource fit: a laptop runs every machine preset in development (docs/dev-cluster.md)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import secrets
import socket

from podtask_devcluster import errors
from podtask_devcluster.podstatus import now_rfc3339
from podtask_devcluster.registry import Registry
from podtask_devcluster.request_options import WriteOptions
from podtask_devcluster.store import JsonObject, WatchEvent, storage_key
from podtask_devcluster.strategies.pods import PODS

NODES = storage_key("", "nodes")
EVENTS = storage_key("", "events")
SCHEDULER_NAME = "default-scheduler"


def ready(node: JsonObject) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def unschedulable_message(nodes: list[JsonObject]) -> str:
    """kube-scheduler's FitError wording for the few reasons this scheduler knows."""
    if not nodes:
        return "no nodes available to schedule pods"
    cordoned = sum(1 for n in nodes if (n.get("spec") or {}).get("unschedulable"))
    not_ready = len(nodes) - cordoned
    parts = []
    if not_ready:
        parts.append(
            f"{not_ready} node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}"
        )
    if cordoned:
        parts.append(f"{cordoned} node(s) were unschedulable")
    count = len(nodes)
    return (
        f"0/{count} nodes are available: {', '.join(parts)}. preemption: 0/{count} nodes are "
        f"available: {count} Preemption is not helpful for scheduling."
    )


def wants_scheduling(pod: JsonObject) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
        and not pod["metadata"].get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
    )


class Scheduler:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._store = registry.store
        self._queued: set[tuple[str, str]] = set()
        self._instance = f"{SCHEDULER_NAME}-{socket.gethostname()}"
        self._started = False
        self._store.subscribe(self._on_event)

    def start(self) -> None:
        self._started = True
        self._schedule_all()

    def _on_event(self, event: WatchEvent) -> None:
        if not self._started or event.type == "DELETED":
            return
        if event.resource == NODES and ready(event.object):
            asyncio.get_running_loop().call_soon(self._schedule_all)
        elif event.resource == PODS and wants_scheduling(event.object):
            meta = event.object["metadata"]
            key = (str(meta.get("namespace", "")), str(meta["name"]))
            if key not in self._queued:
                self._queued.add(key)
                # Later, not inside the write that created the pod, as a separate scheduler.
                asyncio.get_running_loop().call_soon(self._schedule, key)

    def _schedule_all(self) -> None:
        for pod in self._store.objects_of(PODS):
            if wants_scheduling(pod):
                meta = pod["metadata"]
                self._schedule((str(meta.get("namespace", "")), str(meta["name"])))

    def _schedule(self, key: tuple[str, str]) -> None:
        self._queued.discard(key)
        pod = self._store.get(PODS, *key)
        if pod is None or not wants_scheduling(pod):
            return
        nodes = sorted(self._store.objects_of(NODES), key=lambda n: str(n["metadata"]["name"]))
        fitting = [n for n in nodes if ready(n)]
        if not fitting:
            self._unschedulable(pod, unschedulable_message(nodes))
            return
        node = str(fitting[0]["metadata"]["name"])
        try:
            bound = self._registry.bind(
                key[0],
                key[1],
                {
                    "metadata": {"name": key[1], "uid": pod["metadata"].get("uid")},
                    "target": {"kind": "Node", "name": node},
                },
            )
        except errors.StatusError:
            return  # deleted or bound meanwhile
        message = f"Successfully assigned {key[0]}/{key[1]} to {node}"
        self._event(bound, "Normal", "Scheduled", message)

    def _unschedulable(self, pod: JsonObject, message: str) -> None:
        status = pod.get("status") or {}
        previous = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
        )
        if previous is not None and previous.get("message") == message:
            return
        updated = copy.deepcopy(pod)
        others = [
            c for c in updated["status"].get("conditions") or [] if c.get("type") != "PodScheduled"
        ]
        updated["status"]["conditions"] = [
            *others,
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": (previous or {}).get("lastTransitionTime")
                if (previous or {}).get("status") == "False"
                else now_rfc3339(),
            },
        ]
        stored = self._store.put(PODS, updated)
        self._event(stored, "Warning", "FailedScheduling", message)

    def _event(self, pod: JsonObject, kind: str, reason: str, message: str) -> None:
        """An events.k8s.io/v1 Event as the core/v1 API shows it."""
        meta = pod["metadata"]
        namespace = str(meta.get("namespace", "default"))
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": namespace,
                "name": meta["name"],
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {},
            "firstTimestamp": None,
            "lastTimestamp": None,
            "eventTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "action": "Binding" if reason == "Scheduled" else "Scheduling",
            "reportingComponent": SCHEDULER_NAME,
            "reportingInstance": self._instance,
        }
        resource = self._registry.catalog.by_storage_key(EVENTS)
        assert resource is not None
        with contextlib.suppress(errors.StatusError):  # an event is best effort, as in kube
            self._registry.create(resource, namespace, event, WriteOptions())
