"""Where the node agent keeps a container's log file (CRI format, `crilog`)."""

from __future__ import annotations

from pathlib import Path


def log_path(log_dir: Path, namespace: str, pod: str, container: str) -> Path:
    return log_dir / f"{namespace}_{pod}_{container}.log"
