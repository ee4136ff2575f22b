"""Where the Kubernetes API server is and who the operator is to it (`KubeLogin`), for kopf's
watches and `Kube`'s calls alike, found where the official client finds them:

- in a pod, its service account: the server from `KUBERNETES_SERVICE_HOST` and
  `KUBERNETES_SERVICE_PORT`, the mounted CA, and the mounted token, read again each minute
  (the kubelet renews the file before the token expires);
- else the kubeconfig's current context (`KUBECONFIG`'s files merged, the first to set a
  value winning, or `~/.kube/config`): the cluster's server, CA (file or data) and
  `insecure-skip-tls-verify`; the user's client certificate and key (files or data), token,
  `tokenFile` (read again each minute, and over a token, as client-go does) or username and
  password. Relative paths are the kubeconfig file's.

A user whose token a program makes (`exec`) or an `auth-provider` keeps is logged in by the
official client's loaders, imported only then: that client is about 20 MB of the operator's
memory (p5), and kopf imports it too when it can (see `podtask_operator/__init__.py`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import kopf
import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# How long a token read from a file is used before the file is read again (client-go's too).
TOKEN_FILE_SECONDS = 60.0


class NoCredentials(Exception):
    """Neither a service account nor a usable kubeconfig: says what to set."""


@dataclass
class _TokenFile:
    """The token in `path`, read again once a minute; as client-go does, the last value read
    wins over `token` (a kubeconfig's own), which stands while the file cannot be read."""

    path: Path
    token: str = ""
    read_at: float = -TOKEN_FILE_SECONDS

    def __call__(self) -> str:
        now = time.monotonic()
        if now - self.read_at >= TOKEN_FILE_SECONDS:
            self.read_at = now
            with contextlib.suppress(OSError):
                self.token = self.path.read_text().strip() or self.token
        return self.token


@dataclass
class KubeLogin:
    """`connection`: the server, its CA and the client certificate, for kopf and for the TLS
    of `Kube`'s session; `bearer` (when set) makes the token as each request is sent, so that
    a renewed one is used."""

    connection: kopf.ConnectionInfo
    bearer: Callable[[], str] | None = field(default=None)

    @property
    def server(self) -> str:
        return self.connection.server.rstrip("/")

    def headers(self) -> dict[str, str]:
        """The `Authorization` header of a request sent now (none without credentials)."""
        if self.bearer is not None:
            token = self.bearer()
            return {"Authorization": f"Bearer {token}"} if token else {}
        return self.connection.as_http_headers()

    def for_kopf(self) -> kopf.ConnectionInfo:
        """What kopf's login handler returns: the token as it is now (kopf logs in again when
        the API server answers 401)."""
        if self.bearer is None:
            return self.connection
        return replace(self.connection, token=self.bearer() or None)


def load_login() -> KubeLogin:
    """The service account when in a pod, else the kubeconfig's current context."""
    return in_cluster_login() or kubeconfig_login()


def in_cluster_login(root: Path = SERVICE_ACCOUNT) -> KubeLogin | None:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    token = root / "token"
    if not host or not port or not token.exists():
        return None
    with contextlib.suppress(ValueError):  # a name, not an address
        host = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    ca = root / "ca.crt"
    namespace = root / "namespace"
    connection = kopf.ConnectionInfo(
        server=f"https://{host}:{port}",
        ca_path=str(ca) if ca.exists() else None,
        default_namespace=namespace.read_text().strip() if namespace.exists() else None,
    )
    return KubeLogin(connection, bearer=_TokenFile(token))


def _kubeconfig_paths() -> list[Path]:
    listed = os.environ.get("KUBECONFIG", "")
    if listed:
        return [Path(p).expanduser() for p in listed.split(os.pathsep) if p.strip()]
    default = Path("~/.kube/config").expanduser()
    return [default] if default.exists() else []


def _merged(paths: list[Path]) -> tuple[str | None, dict[str, dict[str, tuple[Path, Any]]]]:
    """The current context and, per section, each entry by name with the directory of the file
    it came from: the first file to name an entry wins, as kubectl merges them."""
    current: str | None = None
    sections: dict[str, dict[str, tuple[Path, Any]]] = {"contexts": {}, "clusters": {}, "users": {}}
    for path in paths:
        if not path.exists():
            continue  # kubectl skips a listed file that does not exist
        config = yaml.safe_load(path.read_text()) or {}
        current = current or config.get("current-context") or None
        for section, entries in sections.items():
            for item in config.get(section) or []:
                entries.setdefault(item["name"], (path.parent, item.get(section[:-1]) or {}))
    return current, sections


def kubeconfig_login(paths: list[Path] | None = None) -> KubeLogin:
    """From `paths` (by default KUBECONFIG's, or ~/.kube/config)."""
    paths = _kubeconfig_paths() if paths is None else paths
    current, sections = _merged(paths)
    if current is None:
        read = ", ".join(map(str, paths)) or "KUBECONFIG is unset, ~/.kube/config does not exist"
        raise NoCredentials(
            "no Kubernetes credentials: not in a pod (KUBERNETES_SERVICE_HOST is unset) and no "
            f"kubeconfig with a current-context ({read})"
        )
    if current not in sections["contexts"]:
        raise NoCredentials(f"the kubeconfig's current-context {current!r} is not defined in it")
    _, context = sections["contexts"][current]
    for section, key in (("clusters", "cluster"), ("users", "user")):
        if context.get(key) not in sections[section]:
            raise NoCredentials(
                f"the kubeconfig's context {current!r} names the {key} {context.get(key)!r}, "
                "which it does not define"
            )
    cluster_dir, cluster = sections["clusters"][context["cluster"]]
    user_dir, user = sections["users"][context["user"]]
    if "exec" in user or "auth-provider" in user:
        return _official_login(paths)

    def path(directory: Path, value: str | None) -> str | None:
        return None if not value else str(directory / Path(value).expanduser())

    connection = kopf.ConnectionInfo(
        server=cluster.get("server") or "",
        ca_path=path(cluster_dir, cluster.get("certificate-authority")),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        certificate_path=path(user_dir, user.get("client-certificate")),
        certificate_data=user.get("client-certificate-data"),
        private_key_path=path(user_dir, user.get("client-key")),
        private_key_data=user.get("client-key-data"),
        username=user.get("username"),
        password=user.get("password"),
        token=user.get("token"),
        default_namespace=context.get("namespace"),
    )
    if not connection.server:
        raise NoCredentials(f"the kubeconfig's cluster {context['cluster']!r} has no server")
    token_file = path(user_dir, user.get("tokenFile"))
    if token_file:
        return KubeLogin(connection, bearer=_TokenFile(Path(token_file), user.get("token") or ""))
    return KubeLogin(connection)


def _official_login(paths: list[Path]) -> KubeLogin:
    import kubernetes  # only here: see the module's docstring

    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=os.pathsep.join(map(str, paths)), client_configuration=configuration
    )

    def bearer() -> str:
        # The configuration's refresh hook runs the plugin again as its token expires.
        value = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        return str(value or "").removeprefix("Bearer ")

    connection = kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )
    return KubeLogin(connection, bearer=bearer)
