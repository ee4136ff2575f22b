"""Who the operator is to the API server: a pod's service account, else the kubeconfig's
current context, read as kubectl reads it; an `exec` user through the official loaders."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from podtask_operator.kube_login import (
    TOKEN_FILE_SECONDS,
    NoCredentials,
    in_cluster_login,
    kubeconfig_login,
    load_login,
)

PROD = "https://prod:6443"


def _kubeconfig(path: Path, current: str | None, **sections: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body: dict[str, object] = {"apiVersion": "v1", "kind": "Config", **sections}
    if current is not None:
        body["current-context"] = current
    path.write_text(yaml.safe_dump(body))
    return path


def _context(name: str, cluster: str, user: str, namespace: str | None = None) -> dict[str, object]:
    context: dict[str, object] = {"cluster": cluster, "user": user}
    if namespace:
        context["namespace"] = namespace
    return {"name": name, "context": context}


def test_merged_kubeconfigs_take_the_first_value_and_their_own_relative_paths(
    tmp_path: Path,
) -> None:
    first = _kubeconfig(
        tmp_path / "a" / "config",
        "work",
        contexts=[_context("work", "prod", "me", "tasks")],
        clusters=[
            {
                "name": "prod",
                "cluster": {"server": "https://prod:6443", "certificate-authority": "ca.crt"},
            }
        ],
    )
    second = _kubeconfig(
        tmp_path / "b" / "config",
        "elsewhere",
        contexts=[_context("work", "other", "other")],
        clusters=[{"name": "prod", "cluster": {"server": "https://not-this:6443"}}],
        users=[{"name": "me", "user": {"client-certificate": "me.crt", "client-key": "me.key"}}],
    )
    login = kubeconfig_login([first, second])
    info = login.connection
    assert login.server == PROD
    assert info.ca_path == str(tmp_path / "a" / "ca.crt")
    assert info.certificate_path == str(tmp_path / "b" / "me.crt")
    assert info.private_key_path == str(tmp_path / "b" / "me.key")
    assert info.default_namespace == "tasks"
    assert login.headers() == {}


def test_a_token_file_is_read_again_once_a_minute_has_passed(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    config = _kubeconfig(
        tmp_path / "config",
        "c",
        contexts=[_context("c", "k", "u")],
        clusters=[{"name": "k", "cluster": {"server": "https://k:6443/"}}],
        users=[{"name": "u", "user": {"tokenFile": "token"}}],
    )
    login = kubeconfig_login([config])
    assert login.server == "https://k:6443"
    assert login.headers() == {"Authorization": "Bearer first"}
    token.write_text("renewed\n")
    assert login.headers() == {"Authorization": "Bearer first"}  # within the minute
    assert login.bearer is not None
    login.bearer.read_at -= TOKEN_FILE_SECONDS  # type: ignore[attr-defined]
    assert login.headers() == {"Authorization": "Bearer renewed"}
    assert login.for_kopf().token == "renewed"


def test_a_static_token_and_inline_data_pass_as_they_are(tmp_path: Path) -> None:
    config = _kubeconfig(
        tmp_path / "config",
        "c",
        contexts=[_context("c", "k", "u")],
        clusters=[
            {
                "name": "k",
                "cluster": {
                    "server": "https://k",
                    "certificate-authority-data": "Q0E=",
                    "insecure-skip-tls-verify": True,
                },
            }
        ],
        users=[{"name": "u", "user": {"token": "abc"}}],
    )
    login = kubeconfig_login([config])
    assert login.connection.ca_data == "Q0E="
    assert login.connection.insecure is True
    assert login.headers() == {"Authorization": "Bearer abc"}
    assert login.for_kopf() is login.connection


def test_a_token_file_wins_over_a_token_while_it_can_be_read(tmp_path: Path) -> None:
    config = _kubeconfig(
        tmp_path / "config",
        "c",
        contexts=[_context("c", "k", "u")],
        clusters=[{"name": "k", "cluster": {"server": "https://k"}}],
        users=[{"name": "u", "user": {"token": "abc", "tokenFile": "token"}}],
    )
    login = kubeconfig_login([config])
    assert login.headers() == {"Authorization": "Bearer abc"}  # no such file (yet)
    (tmp_path / "token").write_text("from-the-file")
    assert login.bearer is not None
    login.bearer.read_at -= TOKEN_FILE_SECONDS  # type: ignore[attr-defined]
    assert login.headers() == {"Authorization": "Bearer from-the-file"}


def test_in_a_pod_the_service_account_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("podtask\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    login = in_cluster_login(tmp_path)
    assert login is not None
    assert login.server == "https://[fd00::1]:443"
    assert login.connection.ca_path == str(tmp_path / "ca.crt")
    assert login.connection.default_namespace == "podtask"
    assert login.headers() == {"Authorization": "Bearer sa-token"}
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert in_cluster_login(tmp_path).server == "https://10.96.0.1:443"  # type: ignore[union-attr]
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert in_cluster_login(tmp_path) is None


def test_without_a_pod_or_a_kubeconfig_the_error_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(NoCredentials, match="KUBECONFIG is unset"):
        load_login()
    bad = _kubeconfig(tmp_path / "config", "c", contexts=[_context("c", "k", "u")])
    with pytest.raises(NoCredentials, match="names the cluster 'k', which it does not define"):
        kubeconfig_login([bad])
    with pytest.raises(NoCredentials, match="current-context 'x' is not defined"):
        kubeconfig_login([_kubeconfig(tmp_path / "other", "x")])


@pytest.mark.component  # the exec plugin is a process
def test_an_exec_user_gets_its_token_from_the_plugin(tmp_path: Path) -> None:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": "from-the-plugin"},
    }
    config = _kubeconfig(
        tmp_path / "config",
        "c",
        contexts=[_context("c", "k", "u")],
        clusters=[{"name": "k", "cluster": {"server": "https://k:6443"}}],
        users=[
            {
                "name": "u",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": sys.executable,
                        "args": ["-c", f"print({json.dumps(json.dumps(credential))})"],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    )
    login = kubeconfig_login([config])
    assert login.server == "https://k:6443"
    assert login.headers() == {"Authorization": "Bearer from-the-plugin"}


@pytest.mark.component  # a Python process of its own
def test_the_operator_imports_no_official_client() -> None:
    probe = textwrap.dedent(
        """
        import sys
        import podtask_operator.__main__
        print(sorted(m for m in sys.modules if m.split(".")[0] == "kubernetes"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
