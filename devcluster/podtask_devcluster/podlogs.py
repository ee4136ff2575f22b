"""Where the node agent keeps a container's log file (CRI format, `crilog`)."""

from __future__ import annotations

from pathlib import Path


def log_path(log_dir: Path, namespace: str, pod: str, container: str) -> Path:
    return log_dir / f"{namespace}_{pod}_{container}.log"


def remove_pod_logs(log_dir: Path, namespace: str, pod: str) -> None:
    """Remove the log files of every container of a pod (names hold no `_`, so the pattern
    matches this pod's files only)."""
    for path in log_dir.glob(f"{namespace}_{pod}_*.log"):
        path.unlink(missing_ok=True)
