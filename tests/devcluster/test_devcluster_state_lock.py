"""A state directory serves one cluster at a time. A `podtask dev` started again at once after
the one before it was killed finds that one's cluster still stopping (it gets SIGTERM when
`podtask dev` dies, and stops its pods first): were both to use the database, each would hold
its own view of the objects and overwrite what the other wrote (a report, a pod's end)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kubernetes import client, config

from podtask_devcluster import EmbeddedCluster, StateDirInUse
from tests.e2e.conftest import wait_until

# Not unit (tests/tiers.py): starts embedded clusters.
pytestmark = pytest.mark.component


def _config_map(cluster: EmbeddedCluster, name: str) -> None:
    with config.new_client_from_config(config_file=str(cluster.kubeconfig_path)) as api:
        client.CoreV1Api(api).create_namespaced_config_map(
            "default", {"metadata": {"name": name}, "data": {"k": "v"}}
        )


def _config_maps(cluster: EmbeddedCluster) -> set[str]:
    return {c["metadata"]["name"] for c in cluster.objects("configmaps", namespace="default")}


def test_a_second_cluster_waits_for_the_first_to_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = EmbeddedCluster(state, workdir=tmp_path).start()
    _config_map(first, "before")
    second = EmbeddedCluster(state, workdir=tmp_path)
    failures: list[BaseException] = []

    def start_second() -> None:
        try:
            second.start()
        except BaseException as exc:
            failures.append(exc)

    starting = threading.Thread(target=start_second)
    starting.start()
    try:
        # Written by the first while the second is starting: the second must see it.
        _config_map(first, "while-the-second-starts")
        first.stop()
        starting.join(60)
        assert not failures, failures
        assert second.running
        assert {"before", "while-the-second-starts"} <= _config_maps(second)
    finally:
        first.stop()
        starting.join(60)
        second.stop()


def test_a_cluster_still_in_use_is_named_after_waiting(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with EmbeddedCluster(state, workdir=tmp_path):
        waiting = EmbeddedCluster(state, workdir=tmp_path, state_lock_timeout=0.5)
        with pytest.raises(StateDirInUse) as refused:
            waiting.start()
        assert str(state) in str(refused.value)
        assert "in use by another podtask dev cluster" in str(refused.value)
        assert not waiting.running
    # Once the first is gone, the state dir is free again.
    with EmbeddedCluster(state, workdir=tmp_path, state_lock_timeout=5) as again:
        wait_until(lambda: again.running)
