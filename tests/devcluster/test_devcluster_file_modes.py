"""The state directory is owner-only: the database (payloads, outputs, tokens, Secrets), its
journal files, the kubeconfig, the pod logs and the certificates and keys of its node and
of the apiserver's kubelet client; files left readable by an older version are fixed at
start."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from devcluster_testing import wait_for
from kubernetes import client, config

from podtask_devcluster import EmbeddedCluster

# Not unit (tests/tiers.py): starts an embedded cluster.
pytestmark = pytest.mark.component


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_files_are_owner_only_even_when_they_were_not(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    (state / "node" / "logs").mkdir(mode=0o755, parents=True)
    (state / "node" / "logs").chmod(0o755)
    # What an older version left: a world-readable database with its journal files.
    old = sqlite3.connect(state / "cluster.db")
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE leftover (x)")
    for name in ("cluster.db", "cluster.db-wal", "cluster.db-shm"):
        (state / name).chmod(0o644)
    (state / "kubeconfig").write_text("")
    (state / "kubeconfig").chmod(0o644)

    with EmbeddedCluster(state, workdir=tmp_path) as cluster:
        old.close()
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
        core = client.CoreV1Api(api)
        core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": "talker"},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "x", "command": ["echo", "secret"]}],
                },
            },
        )
        wait_for(
            lambda: core.read_namespaced_pod("talker", "default").status.phase == "Succeeded",
            what="pod finished",
        )
        api.close()
        files = [
            "cluster.db",
            "cluster.db-wal",
            "cluster.db-shm",
            "kubeconfig",
            "node/logs/default_talker_main.log",
            "pki/ca.crt",
            "pki/ca.key",
            "pki/apiserver-kubelet-client.crt",
            "pki/apiserver-kubelet-client.key",
            "pki/nodes/podtask-dev-serving.crt",
            "pki/nodes/podtask-dev-serving.key",
        ]
        assert {name: oct(_mode(state / name)) for name in files} == dict.fromkeys(
            files, oct(0o600)
        )
        assert cluster.log_dir == state / "node" / "logs"
        folders = [state, state / "node", state / "node" / "logs", state / "pki"]
        assert [oct(_mode(folder)) for folder in folders] == [oct(0o700)] * len(folders)
