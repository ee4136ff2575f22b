"""Where the node agent keeps a container's log file (CRI format, `crilog`)."""

from __future__ import annotations

from pathlib import Path


def log_path(log_dir: Path, namespace: str, pod: str, container: str) -> Path:
    return log_dir / f"{namespace}_{pod}_{container}.log"


def previous_log_path(log_file: Path) -> Path:
    """Where the log of a container's run before the current one is kept (`log_path`'s)."""
    return log_file.with_suffix(".previous.log")


def keep_as_previous(log_file: Path) -> None:
    """The container starts again: its current log becomes its previous one (a kubelet keeps
    the one run before the current one)."""
    if log_file.exists():
        log_file.replace(previous_log_path(log_file))


def remove_pod_logs(log_dir: Path, namespace: str, pod: str) -> None:
    """Remove the log files of every container of a pod, previous ones too (names hold no
    `_`, so the pattern matches this pod's files only)."""
    for path in log_dir.glob(f"{namespace}_{pod}_*.log"):
        path.unlink(missing_ok=True)
