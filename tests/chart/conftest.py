"""One embedded cluster for the chart's cluster tests, and real kubectl against it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import pytest

from podtask_devcluster import EmbeddedCluster
from tests.chart.chart import ROOT

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def chart_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    state = tmp_path_factory.mktemp("chart-cluster")
    # Task pods run `python -m podtask_runner` from the repository, as the dev stack does.
    with EmbeddedCluster(state / "state", port=0, workdir=ROOT) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def kubectl(chart_cluster: EmbeddedCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    cache = tmp_path_factory.mktemp("kubectl-cache")
    env = {
        **os.environ,
        "KUBECONFIG": str(chart_cluster.kubeconfig_path),
        "KUBECACHEDIR": str(cache),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", *args], capture_output=True, text=True, env=env, timeout=60
        )
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done

    return run
