"""The one real control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager)
that tests share per session; built first if the cache lacks the binaries (`go` needed).

Tests isolate themselves by namespace, as on the embedded cluster (`tests/embedded_kube.py`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from podtask_devcluster.control_plane import ControlPlane


@pytest.fixture(scope="session")
def real_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    state = tmp_path_factory.mktemp("real-control-plane")
    with ControlPlane(state / "state") as control_plane:
        yield control_plane
