"""CPU time of each part of a `podtask dev` stack (its processes, told apart by their command
lines), for the benchmarks that say where a run's CPU goes."""

from __future__ import annotations

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
