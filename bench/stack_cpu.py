"""CPU time of each part of a `podtask dev` stack (its processes, told apart by their command
lines), for the benchmarks that say where a run's CPU goes, and the most runs a second this
machine's cores allow at that cost (`runs_per_s_bound`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import psutil

from podtask._cli.devprocess import DevProcess

PARTS = (
    ("operator", "podtask_operator"),
    ("api", "podtask_api"),
    ("node-agent", "node_agent"),
    ("runner", "podtask_runner"),
    ("embedded-cluster", "podtask_devcluster"),
    ("kube-apiserver", "kube-apiserver"),
    ("etcd", "etcd"),
    ("kube-scheduler", "kube-scheduler"),
    ("kube-controller-manager", "kube-controller-manager"),
)
# The parts that are Kubernetes itself (the real control plane), none of them podtask's.
KUBERNETES_PARTS = ("kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager")


def cpu_by_part(dev: DevProcess) -> dict[str, float]:
    """CPU seconds (user + system) each part of the stack has used so far: the live processes'
    own, and (psutil's children times) what their ended children used, such as runners."""
    used: dict[str, float] = {"podtask dev": 0.0}
    root = psutil.Process(dev.pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            line = " ".join(process.cmdline())
            times = process.cpu_times()
        except psutil.Error:
            continue
        part = next((name for name, mark in PARTS if mark in line), None)
        if process.pid == root.pid:
            part = "podtask dev"
        if part is not None:
            used[part] = used.get(part, 0.0) + times.user + times.system
            # Ended children (a pod's runner) are reaped by their parent: counted as the
            # runner's, not the parent's.
            reaped = times.children_user + times.children_system
            if reaped:
                used["runner"] = used.get("runner", 0.0) + reaped
    return used


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {part: after[part] - before.get(part, 0.0) for part in after}


def cores() -> int:
    """The cores this process may run on (the benchmark's stack runs on the same)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def runs_per_s_bound(
    cpu_ms_per_run: Mapping[str, float], core_count: int, parts: Iterable[str] | None = None
) -> float | None:
    """The most runs a second `core_count` cores can serve when each run costs what `parts` (all of
    them when None) spent on it, whatever the other parts spend; None when they spent none.
    A CPU-bound run rate can reach it, never pass it."""
    chosen = cpu_ms_per_run.keys() if parts is None else parts
    ms = sum(cpu_ms_per_run.get(part, 0.0) for part in chosen)
    return core_count * 1000 / ms if ms > 0 else None
