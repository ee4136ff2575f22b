"""The cgroup of its own each container of the container runtime runs under
(`--cgroup-parent /podtask/pod<uid>/<container>`): after the container has ended, whether the
kernel killed it at its memory limit, and removing those cgroups.

Why a parent of our own: on a hybrid cgroup v1/v2 layout podman reports `OOMKilled=false`
even when the kernel's OOM killer ended the container, and the container's own cgroup is gone
with it. The parent outlives the container and holds the answer: on cgroup v1 its
`memory.max_usage_in_bytes` has reached the limit; on cgroup v2 its `memory.events` counts an
`oom_kill` (or `memory.peak` has reached the limit).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
REMOVE_PATIENCE_SECONDS = 5.0
REMOVE_RETRY_SECONDS = 0.05


@dataclass(frozen=True)
class CgroupMount:
    path: Path
    version: int
    # v1: the controllers of this hierarchy (`memory`, `cpu,cpuacct`, `name=systemd`, …).
    options: tuple[str, ...]


def cgroup_mounts(mountinfo: str) -> list[CgroupMount]:
    """The cgroup hierarchies mounted on this machine, from /proc/self/mountinfo."""
    found: list[CgroupMount] = []
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        kind = tail[0]
        if kind == "cgroup2":
            found.append(CgroupMount(Path(fields[4]), 2, ()))
        elif kind == "cgroup":
            found.append(CgroupMount(Path(fields[4]), 1, tuple(tail[2].split(","))))
    return found


def _mounts() -> list[CgroupMount]:
    try:
        return cgroup_mounts(MOUNTINFO.read_text())
    except OSError:
        return []


def _memory_dirs(parent: str) -> list[tuple[int, Path]]:
    relative = parent.lstrip("/")
    dirs: list[tuple[int, Path]] = []
    for mount in _mounts():
        where = mount.path / relative
        if mount.version == 1 and "memory" in mount.options:
            dirs.append((1, where))
        elif mount.version == 2 and (where / "memory.events").exists():
            dirs.append((2, where))
    return dirs


def _number(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _oom_kills(events: Path) -> int:
    try:
        for line in events.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def hit_memory_limit(parent: str, limit: int) -> bool:
    """Whether the processes under the cgroup `parent` were OOM-killed at `limit` (or, where
    only a high-water mark is kept, used all of it)."""
    for version, where in _memory_dirs(parent):
        if version == 2:
            if _oom_kills(where / "memory.events") > 0:
                return True
            peak = _number(where / "memory.peak")
            if peak is not None and peak >= limit:
                return True
        else:
            peak = _number(where / "memory.max_usage_in_bytes")
            if peak is not None and peak >= limit:
                return True
    return False


def remove_cgroup(path: str, patience: float = REMOVE_PATIENCE_SECONDS) -> bool:
    """Remove the cgroup `path` and every cgroup below it (podman leaves `conmon`) in each
    hierarchy. A cgroup still holding a process cannot go: conmon may still be exiting when
    `podman rm` returns, so this tries again for up to `patience` seconds. True once gone."""
    relative = path.lstrip("/")
    if not relative:
        return True
    deadline = time.monotonic() + patience
    while True:
        left = False
        for mount in _mounts():
            top = mount.path / relative
            if not top.is_dir():
                continue
            for current, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(current)
            left = left or top.is_dir()
        if not left:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(REMOVE_RETRY_SECONDS)
