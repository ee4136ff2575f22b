"""Fixtures shared across components: registered here so that one instance serves the session.

The summary names the real kube-apiserver that the session's real-cluster tests ran against.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.embedded_kube import embedded_kube
from tests.real_control_plane import real_control_plane

__all__ = ["embedded_kube", "real_control_plane"]


def _real_apiserver_version() -> str:
    from podtask_devcluster.control_plane_build import cache_dir

    binary = cache_dir() / "kube-apiserver"
    if not binary.exists():
        return "not built"
    done = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    return (done.stdout or done.stderr).strip()


# Suites that only run against the real control plane; elsewhere a `[real]` parameter says so.
REAL_ONLY = ("tests/control_plane/", "tests/node_agent/", "tests/conformance/")


def _on_the_real_cluster(nodeid: str) -> bool:
    path = nodeid.split("::")[0]
    return "[real" in nodeid or "real" in path or path.startswith(REAL_ONLY)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ran = [
        report
        for outcome in ("passed", "failed", "error")
        for report in terminalreporter.stats.get(outcome, [])
        if getattr(report, "when", "call") == "call"
    ]
    real = [r for r in ran if _on_the_real_cluster(r.nodeid)]
    if real:
        terminalreporter.write_line(
            f"real control plane: {_real_apiserver_version()} (kube-apiserver), "
            f"{len(real)} tests ran against it"
        )
