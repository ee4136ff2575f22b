"""`pods/log` as kube-apiserver serves it: the container is checked against the pod, then the
request goes to the kubelet of the pod's node (`https://<InternalIP>:<kubeletEndpoint port>
/containerLogs/{ns}/{pod}/{container}`) with the apiserver's kubelet client certificate, the
query (follow, tailLines, limitBytes, timestamps, sinceSeconds, sinceTime, previous) passed
through, and the kubelet's answer streamed back; an error answer becomes a Status with the
kubelet's text as its message. A pod not bound to a node has an empty log."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from podtask_devcluster import errors
from podtask_devcluster.store import JsonObject

PASSED_THROUGH = (
    "follow",
    "tailLines",
    "limitBytes",
    "timestamps",
    "sinceSeconds",
    "sinceTime",
    "previous",
)
# The node addresses tried, in order: kube-apiserver's --kubelet-preferred-address-types as
# the real control plane sets it (`control_plane`).
ADDRESS_TYPES = ("InternalIP", "Hostname")
CONNECT_TIMEOUT_SECONDS = 10.0
REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 500: "InternalError"}


@dataclass(frozen=True)
class KubeletCredentials:
    """The CA that signed the kubelets' serving certificates, and the apiserver's client
    certificate that the kubelets accept."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


def container_of(pod: JsonObject, name: str, requested: str | None) -> str:
    """The container a log request means, as kube-apiserver's validateContainer decides."""
    containers = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    if not requested:
        if len(containers) != 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(containers)}]"
            )
        return str(containers[0])
    if requested not in containers:
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def kubelet_url(node: JsonObject) -> str:
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = next((addresses[t] for t in ADDRESS_TYPES if addresses.get(t)), None)
    if not port or not host:
        raise errors.bad_request(f"node {node['metadata']['name']} has no kubelet endpoint")
    if ":" in str(host):
        host = f"[{host}]"
    return f"https://{host}:{port}"


class KubeletProxy:
    def __init__(self, credentials: KubeletCredentials) -> None:
        self._client = httpx.AsyncClient(
            verify=credentials.ssl_context(),
            timeout=httpx.Timeout(CONNECT_TIMEOUT_SECONDS, read=None),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def logs(
        self, node: JsonObject, pod: JsonObject, container: str, params: dict[str, str]
    ) -> tuple[AsyncIterator[bytes], bool]:
        """The log as chunks, and whether it is followed. The kubelet's refusal is raised
        before the first chunk."""
        meta = pod["metadata"]
        url = (
            f"{kubelet_url(node)}/containerLogs/{meta.get('namespace', '')}/{meta['name']}/"
            f"{container}"
        )
        query = {k: v for k, v in params.items() if k in PASSED_THROUGH and v != ""}
        request = self._client.build_request("GET", url, params=query)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as error:
            raise errors.StatusError(
                500, "InternalError", f'Get "{url}": {error or type(error).__name__}'
            ) from error
        if response.status_code >= 400:
            text = (await response.aread()).decode(errors="replace").strip()
            await response.aclose()
            code = response.status_code
            raise errors.StatusError(code, REASONS.get(code, "InternalError"), text)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            except httpx.HTTPError:
                return
            finally:
                await response.aclose()

        return chunks(), query.get("follow") in ("true", "1")
