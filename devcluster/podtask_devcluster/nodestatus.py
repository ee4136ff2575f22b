"""The Node and its Lease as a kubelet writes them: this machine's CPU and memory as capacity
and allocatable, the node conditions, addresses, the kubelet endpoint, system info. Pure, but
for reading the machine's size."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from podtask_devcluster.store import JsonObject

MAX_PODS = 110
SIMULATED_CPUS = 2_000
SIMULATED_MEMORY_BYTES = 4 * 2**40
SIMULATED_MAX_PODS = 1_000
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
AGENT_VERSION = "v1.37.2-podtask"
_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}


def micro_time(moment: dt.datetime | None = None) -> str:
    """metav1.MicroTime as the apiserver writes it."""
    return (moment or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339(moment: dt.datetime | None = None) -> str:
    return (moment or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_bytes: int
    storage_bytes: int
    # A kubelet's --max-pods.
    max_pods: int = MAX_PODS

    @classmethod
    def this_one(cls, storage_dir: Path) -> Machine:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        return cls(
            cpus=cpus or os.cpu_count() or 1,
            memory_bytes=int(psutil.virtual_memory().total),
            storage_bytes=int(shutil.disk_usage(storage_dir).total),
        )

    @classmethod
    def simulated(cls) -> Machine:
        """What a node of simulated pods (`simulated_runtime`) advertises, as a kwok node
        does: no pod uses any of it, so it is sized for the busy cluster a benchmark makes
        (a queue limit of 500 machines of any preset up to large-1x fits)."""
        return cls(
            cpus=SIMULATED_CPUS,
            memory_bytes=SIMULATED_MEMORY_BYTES,
            storage_bytes=SIMULATED_MEMORY_BYTES,
            max_pods=SIMULATED_MAX_PODS,
        )

    def resources(self) -> JsonObject:
        return {
            "cpu": str(self.cpus),
            "memory": f"{self.memory_bytes // 1024}Ki",
            "ephemeral-storage": f"{self.storage_bytes // 1024}Ki",
            "pods": str(self.max_pods),
        }


def arch() -> str:
    machine = platform.machine()
    return _ARCHES.get(machine, machine)


_CONDITIONS = [
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
]


def node_conditions(previous: list[JsonObject], now: str) -> list[JsonObject]:
    """The node conditions with a fresh heartbeat; a transition time only moves when the
    status changes."""
    before = {c.get("type"): c for c in previous}
    out = []
    for kind, status, reason, message in _CONDITIONS:
        old = before.get(kind) or {}
        changed = old.get("status") != status
        out.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now if changed else old.get("lastTransitionTime", now),
            }
        )
    return out


def node_status(
    machine: Machine, port: int, previous: list[JsonObject], now: str, boot_id: str
) -> JsonObject:
    resources = machine.resources()
    return {
        "capacity": resources,
        "allocatable": dict(resources),
        "conditions": node_conditions(previous, now),
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": platform.node() or "localhost"},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": _machine_id(),
            "systemUUID": _machine_id(),
            "bootID": boot_id,
            "kernelVersion": platform.release(),
            "osImage": f"podtask node agent on {platform.system()}",
            "containerRuntimeVersion": "podtask-shim://0.1.0",
            "kubeletVersion": AGENT_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": platform.system().lower(),
            "architecture": arch(),
        },
    }


def node_object(name: str, status: JsonObject) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": platform.system().lower(),
                "kubernetes.io/arch": arch(),
            },
            # What a kubelet with a CRI runtime sets: the controller-manager reads it.
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": status,
    }


def lease_object(node: str, node_uid: str, now: str) -> JsonObject:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": now,
        },
    }


def _machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return uuid.uuid5(uuid.NAMESPACE_DNS, platform.node()).hex
