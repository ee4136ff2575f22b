"""Real kubectl against each cluster: the embedded one, then a real one (control plane and
node agent); what kubectl prints must be the same on both."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from podtask_devcluster import EmbeddedCluster
from tests.clusters import CLUSTERS
from tests.real_cluster import RealCluster

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else "kubectl"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module", params=CLUSTERS)
def kubeconfig(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("kubectl-cluster")
    if request.param == "real":
        with RealCluster(state, state) as real:
            yield real.kubeconfig_path
        return
    with EmbeddedCluster(state / "state", workdir=state) as embedded:
        yield embedded.kubeconfig_path


@pytest.fixture(scope="module")
def api(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def kubectl(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    cache = tmp_path_factory.mktemp("kubectl-cache")
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(cache))

    def run(
        *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [KUBECTL, *args], input=input, capture_output=True, text=True, env=env, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    return run
