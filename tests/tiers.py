"""The test tiers, as pytest markers, and the guard that keeps the `unit` tier pure.

The markers (registered in pyproject.toml):

- `unit`: pure code; no cluster, no server, no process started. `make unit` runs these.
- `component`: one real part against the embedded cluster, a server or a real process.
- `e2e`: the whole stack (`podtask dev`, or its parts composed): `tests/e2e`, `tests/reliability`,
  `tests/dashboard`.
- `real`: (besides its tier) runs against the real control plane built from source.
- `images`: (besides its tier) needs podman, buildah, runc and debootstrap.

A test gets its tier here, from its path and the fixtures it uses: one that uses a fixture in
`NOT_UNIT_FIXTURES` is not `unit`. A test that starts something in its own body says so with
an explicit marker (a module's `pytestmark = pytest.mark.component`), which wins. A `unit` test
that starts a process, binds or connects a socket anyway fails at once (`guarded`), so a
mis-tiered test cannot hide in `make unit`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Registered, with what each means, in pyproject.toml (`--strict-markers`).
TIERS = ("unit", "component", "e2e")

# Fixtures that start a cluster, a server, a stack or a process (directly or through the
# fixtures they use; pytest's `fixturenames` is already the closure).
NOT_UNIT_FIXTURES = frozenset(
    {
        "embedded_kube",  # tests/embedded_kube.py: the shared embedded cluster
        "real_control_plane",
        "built_images",
        "cluster",  # tests/devcluster: an embedded cluster
        "nodeless",
        "chart_cluster",
        "kubeconfig",  # tests/kubectl: a cluster per module
        "plane",  # tests/node_agent: a control plane of its own
        "enforcing",
        "enforcing_control_plane",
        "stack",
        "composed",
        "batch_stack",
        "container_stack",
        "deploy_stack",
        "dev_stack",
        "embedded_transcripts",
        "real_transcripts",
    }
)
WHOLE_STACK = ("tests/e2e/", "tests/reliability/", "tests/dashboard/")
# Suites that only run against the real control plane; elsewhere a `[real]` parameter says so.
REAL_ONLY = ("tests/control_plane/", "tests/node_agent/", "tests/conformance/")
REAL_FIXTURES = frozenset({"real_control_plane", "plane", "enforcing", "enforcing_control_plane"})


def on_the_real_cluster(nodeid: str) -> bool:
    path = nodeid.split("::")[0]
    return "[real" in nodeid or "real" in path or path.startswith(REAL_ONLY)


def tier_of(item: pytest.Item) -> str:
    explicit = [name for name in TIERS if item.get_closest_marker(name)]
    if len(explicit) > 1:
        raise pytest.UsageError(f"{item.nodeid}: more than one tier: {', '.join(explicit)}")
    if explicit:
        return explicit[0]
    if item.nodeid.startswith(WHOLE_STACK):
        return "e2e"
    if NOT_UNIT_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return "component"
    if item.get_closest_marker("images"):
        return "component"
    return "unit"


def mark(items: list[pytest.Item]) -> set[str]:
    """Give every item its tier, and `real` where it runs against the real control plane;
    return the node ids marked `real`."""
    real_ones = set()
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(tier)
        fixtures = set(getattr(item, "fixturenames", ()))
        real = bool(REAL_FIXTURES & fixtures) or (
            tier != "unit" and on_the_real_cluster(item.nodeid)
        )
        if real and not item.get_closest_marker("real"):
            item.add_marker("real")
        if item.get_closest_marker("real"):
            real_ones.add(item.nodeid)
    return real_ones


def _refusing(what: str, original: Callable[..., Any]) -> Callable[..., Any]:
    # Only the test's own thread is refused: a cluster or server that another tier's fixture
    # left running in this session keeps its threads, which may start pods' processes.
    def refuse(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            raise AssertionError(
                f"a unit test {what}: mark it component (tests/tiers.py) or make it pure"
            )
        return original(*args, **kwargs)

    return refuse


@contextlib.contextmanager
def guarded(item: pytest.Item) -> Iterator[None]:
    """Around a `unit` test's setup and call (its fixtures of every scope included): starting
    a process or touching a socket is an error."""
    if not item.get_closest_marker("unit"):
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "Popen", _refusing("started a process", subprocess.Popen))
        patch.setattr(os, "fork", _refusing("forked", os.fork))
        patch.setattr(os, "posix_spawn", _refusing("spawned a process", os.posix_spawn))
        patch.setattr(os, "posix_spawnp", _refusing("spawned a process", os.posix_spawnp))
        patch.setattr(socket.socket, "bind", _refusing("bound a socket", socket.socket.bind))
        patch.setattr(
            socket.socket, "connect", _refusing("connected a socket", socket.socket.connect)
        )
        patch.setattr(
            socket.socket, "connect_ex", _refusing("connected a socket", socket.socket.connect_ex)
        )
        yield
