"""The two clusters of the differential suite, each with the suite's CRDs installed, and the
transcripts of the scenarios, run once per cluster per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from podtask_devcluster import EmbeddedCluster
from podtask_devcluster.control_plane import ControlPlane
from tests.conformance.conformance_client import Cluster, Transcript
from tests.conformance.scenarios import install_crds, run


class Transcripts:
    def __init__(self, cluster: Cluster, kubeconfig: str) -> None:
        self.cluster = cluster
        self.kubeconfig = kubeconfig
        self._done: dict[str, Transcript] = {}

    def __getitem__(self, scenario: str) -> Transcript:
        if scenario not in self._done:
            self._done[scenario] = run(self.cluster, scenario)
        return self._done[scenario]


@pytest.fixture(scope="session")
def embedded_transcripts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Transcripts]:
    state = tmp_path_factory.mktemp("conformance-embedded")
    with EmbeddedCluster(state / "state", workdir=state) as cluster:
        client = Cluster("embedded", cluster.kubeconfig_path)
        install_crds(client)
        yield Transcripts(client, str(cluster.kubeconfig_path))
        client.close()


@pytest.fixture(scope="session")
def real_transcripts(real_control_plane: ControlPlane) -> Iterator[Transcripts]:
    client = Cluster("real", real_control_plane.kubeconfig)
    install_crds(client)
    yield Transcripts(client, str(real_control_plane.kubeconfig))
    client.close()
