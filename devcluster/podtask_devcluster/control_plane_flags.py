"""The command line of each component of the real control plane (etcd, kube-apiserver,
kube-scheduler, kube-controller-manager): ports, certificates from the cluster's PKI, and the
settings of a kubeadm-like cluster on loopback (`Node,RBAC`, `NodeRestriction`, ServiceAccount
tokens signed by the control plane's own key). Launching them is `control_plane`'s."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from podtask_devcluster.control_plane_pki import ClusterPki
from podtask_devcluster.private_files import private_directory

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


def etcd(pki: ClusterPki, state_dir: Path, client_port: int, peer_port: int) -> list[str]:
    pair = pki.pair("etcd")
    ca = pki.ca.cert
    client_url = f"https://127.0.0.1:{client_port}"
    peer_url = f"https://127.0.0.1:{peer_port}"
    return [
        "--name=podtask",
        f"--data-dir={private_directory(state_dir / 'etcd')}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=podtask={peer_url}",
        "--initial-cluster-state=new",
        f"--cert-file={pair.cert}",
        f"--key-file={pair.key}",
        f"--trusted-ca-file={ca}",
        "--client-cert-auth",
        f"--peer-cert-file={pair.cert}",
        f"--peer-key-file={pair.key}",
        f"--peer-trusted-ca-file={ca}",
        "--peer-client-cert-auth",
        # A throwaway dev cluster: fsync would only slow every write on a busy machine.
        "--unsafe-no-fsync",
    ]


def apiserver(
    pki: ClusterPki, port: int, etcd_port: int, admission_plugins: Sequence[str]
) -> list[str]:
    serving = pki.pair("apiserver")
    etcd_client = pki.pair("apiserver-etcd-client")
    kubelet_client = pki.pair("apiserver-kubelet-client")
    plugins = ",".join(dict.fromkeys(("NodeRestriction", *admission_plugins)))
    return [
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        # The `kubernetes` Service cannot point at a loopback address (as in the
        # apiserver's own test server): no endpoints for it.
        "--endpoint-reconciler-type=none",
        f"--etcd-servers=https://127.0.0.1:{etcd_port}",
        f"--etcd-cafile={pki.ca.cert}",
        f"--etcd-certfile={etcd_client.cert}",
        f"--etcd-keyfile={etcd_client.key}",
        f"--tls-cert-file={serving.cert}",
        f"--tls-private-key-file={serving.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--authorization-mode=Node,RBAC",
        f"--enable-admission-plugins={plugins}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_public_key}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        f"--kubelet-client-certificate={kubelet_client.cert}",
        f"--kubelet-client-key={kubelet_client.key}",
        f"--kubelet-certificate-authority={pki.ca.cert}",
        # A node agent on this machine registers its loopback address as InternalIP.
        "--kubelet-preferred-address-types=InternalIP,Hostname",
    ]


def scheduler(state_dir: Path, kubeconfig: Path, port: int) -> list[str]:
    return _component_common("kube-scheduler", state_dir, kubeconfig, port)


def controller_manager(pki: ClusterPki, state_dir: Path, kubeconfig: Path, port: int) -> list[str]:
    return [
        *_component_common("kube-controller-manager", state_dir, kubeconfig, port),
        "--controllers=*",
        "--use-service-account-credentials",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca.cert}",
        f"--cluster-signing-cert-file={pki.ca.cert}",
        f"--cluster-signing-key-file={pki.ca.key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
    ]


def _component_common(name: str, state_dir: Path, kubeconfig: Path, port: int) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={private_directory(state_dir / name)}",
        "--leader-elect=false",
    ]
