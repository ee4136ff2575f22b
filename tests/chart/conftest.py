"""One cluster for the chart's cluster tests, and real kubectl against it: the embedded
cluster, then a real one (control plane and node agent, `tests/real_cluster.py`) whose
apiserver writes an audit log, so that a test sees every request it refused."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podtask_devcluster import EmbeddedCluster
from tests.chart.chart import ROOT
from tests.clusters import CLUSTERS
from tests.real_cluster import RealCluster

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
ChartCluster = EmbeddedCluster | RealCluster

# Metadata of every request: who asked for what, and the status code it got.
AUDIT_POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Metadata"}]}


def audit_log(cluster: RealCluster) -> Path:
    return cluster.state / "audit.log"


def audited(cluster: RealCluster) -> list[dict[str, Any]]:
    """The apiserver's audit events so far (one per request stage)."""
    path = audit_log(cluster)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module", params=CLUSTERS)
def chart_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChartCluster]:
    state = tmp_path_factory.mktemp("chart-cluster")
    if request.param == "real":
        policy = state / "audit-policy.json"
        policy.write_text(json.dumps(AUDIT_POLICY))
        args = [f"--audit-policy-file={policy}", f"--audit-log-path={state / 'audit.log'}"]
        with RealCluster(state, ROOT, component_args={"kube-apiserver": args}) as real:
            yield real
        return
    # Task pods run `python -m podtask_runner` from the repository, as the dev stack does.
    with EmbeddedCluster(state / "state", port=0, workdir=ROOT) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def kubectl(chart_cluster: ChartCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
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
