"""Fixtures for the dev cluster tests: one shared cluster per session, API clients, kubectl."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
from devcluster_testing import KUBECTL, widget_crd
from kubernetes import client, config

from podtask_devcluster import EmbeddedCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    state = tmp_path_factory.mktemp("devcluster")
    with EmbeddedCluster(state / "state", workdir=state) as running:
        yield running


@pytest.fixture(scope="session")
def api(cluster: EmbeddedCluster) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    yield api_client
    api_client.close()


@pytest.fixture(scope="session")
def widgets(api: client.ApiClient) -> str:
    """The Widget CRD (with a status subresource and printer columns), created once."""
    extensions = client.ApiextensionsV1Api(api)
    extensions.create_custom_resource_definition(widget_crd())
    return "widgets"


@pytest.fixture
def name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def kubectl(
    cluster: EmbeddedCluster, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., subprocess.CompletedProcess[str]]:
    cache = tmp_path_factory.mktemp("kubectl-cache")
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig_path), KUBECACHEDIR=str(cache))

    def run(
        *args: str, input: str | None = None, check: bool = True, timeout: float = 20
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [KUBECTL, *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    return run
