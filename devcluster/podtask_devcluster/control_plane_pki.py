"""The real control plane's certificates and keys, made with `cryptography` under
`<state dir>/pki/` (owner-only files).

One CA signs everything: the serving certificates of etcd and kube-apiserver, the client
certificates of each component (their Common Name is the user, their Organizations the groups
that RBAC sees) and, on request, a node agent's client and serving certificates. The
ServiceAccount signing key is separate. Keys are ECDSA P-256: quick to make, accepted by every
component. What is already there is kept, so a control plane restarted on the same state dir
keeps its CA and the tokens it issued stay valid.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podtask_devcluster.private_files import private_directory, write_private_text

VALIDITY = datetime.timedelta(days=365)
# Certificates are valid from a little before now: clocks of the components may differ.
BACKDATE = datetime.timedelta(hours=1)
# The first address of --service-cluster-ip-range: the `kubernetes` Service's ClusterIP.
SERVICE_IP = "10.0.0.1"
APISERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
LOOPBACK_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


class ClusterPki:
    """The CA of one control plane and the certificates it signed, as files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def ca(self) -> KeyPair:
        return self.pair("ca")

    @property
    def service_account_key(self) -> Path:
        return self.directory / "service-account.key"

    @property
    def service_account_public_key(self) -> Path:
        return self.directory / "service-account.pub"

    def pair(self, name: str) -> KeyPair:
        """The files of certificate `name` (made by `create`, `client` or `serving`)."""
        return KeyPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")

    def create_ca(self) -> ClusterPki:
        """Make the CA if it is missing (and nothing else: the embedded cluster signs only
        its node's certificates and the apiserver's kubelet client certificate)."""
        private_directory(self.directory)
        if not (self.ca.cert.exists() and self.ca.key.exists()):
            self._write_ca()
        return self

    def create(self) -> ClusterPki:
        """Make whatever is missing: the CA, the ServiceAccount key and the components'
        certificates."""
        self.create_ca()
        if not (self.service_account_key.exists() and self.service_account_public_key.exists()):
            key = ec.generate_private_key(ec.SECP256R1())
            _write_key(self.service_account_key, key)
            write_private_text(
                self.service_account_public_key,
                key.public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode(),
            )
        self.serving("etcd", "etcd", dns=("localhost",), ips=LOOPBACK_IPS, client=True)
        self.serving(
            "apiserver", "kube-apiserver", dns=APISERVER_NAMES, ips=(*LOOPBACK_IPS, SERVICE_IP)
        )
        self.client("apiserver-etcd-client", "kube-apiserver-etcd-client")
        self.client(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)
        )
        self.client("admin", "kubernetes-admin", ("system:masters",))
        self.client("scheduler", "system:kube-scheduler")
        self.client("controller-manager", "system:kube-controller-manager")
        return self

    def client(self, name: str, user: str, groups: Sequence[str] = ()) -> KeyPair:
        """A client certificate for `user` in `groups` (made once, then reused)."""
        pair = self.pair(name)
        if not (pair.cert.exists() and pair.key.exists()):
            self._issue(pair, user, groups, usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
        return pair

    def serving(
        self,
        name: str,
        common_name: str,
        *,
        dns: Sequence[str],
        ips: Sequence[str],
        client: bool = False,
    ) -> KeyPair:
        """A serving certificate for those names (and a client one too when `client`: etcd's
        own certificate serves its peer port and dials it)."""
        pair = self.pair(name)
        if not (pair.cert.exists() and pair.key.exists()):
            usages = [ExtendedKeyUsageOID.SERVER_AUTH]
            if client:
                usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
            self._issue(pair, common_name, (), usages=usages, dns=dns, ips=ips)
        return pair

    def node_client(self, node_name: str) -> KeyPair:
        """What a kubelet's client certificate says: the Node authorizer and NodeRestriction
        know it as node `node_name`."""
        return self.client(
            f"nodes/{node_name}-client", f"system:node:{node_name}", ("system:nodes",)
        )

    def node_serving(self, node_name: str) -> KeyPair:
        """A node agent's serving certificate, which kube-apiserver checks against the CA when
        it proxies `kubectl logs`; the node is reached at a loopback address."""
        return self.serving(
            f"nodes/{node_name}-serving",
            f"system:node:{node_name}",
            dns=(node_name, "localhost"),
            ips=LOOPBACK_IPS,
        )

    # ------------------------------------------------------------ internals

    def _write_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podtask-dev-ca")])
        cert = (
            _certificate(name, name, key.public_key(), ca=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        _write_key(self.ca.key, key)
        _write_cert(self.ca.cert, cert)

    def _issue(
        self,
        pair: KeyPair,
        common_name: str,
        groups: Sequence[str],
        *,
        usages: Sequence[x509.ObjectIdentifier],
        dns: Sequence[str] = (),
        ips: Sequence[str] = (),
    ) -> None:
        ca_key = serialization.load_pem_private_key(self.ca.key.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{self.ca.key} is not an EC key")
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        builder = (
            _certificate(subject, ca_cert.subject, key.public_key(), ca=False)
            .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if dns or ips:
            names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
            names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        private_directory(pair.key.parent)
        _write_key(pair.key, key)
        _write_cert(pair.cert, cert)


def _certificate(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, *, ca: bool
) -> x509.CertificateBuilder:
    """What every certificate here has: a random serial, validity from a little before now
    (the CA's ten times longer), and the CA's key usage (signing certificates) or a leaf's
    (digital signatures only)."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + (10 * VALIDITY if ca else VALIDITY))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_private_text(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    write_private_text(path, cert.public_bytes(serialization.Encoding.PEM).decode())
