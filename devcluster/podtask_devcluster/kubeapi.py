"""A small asyncio client of the Kubernetes API for the node agent: one connection (URL, CA,
client certificate and key, as in a kubeconfig), JSON requests with typed errors, and watches
as async iterators of events."""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from podtask_devcluster.store import JsonObject

REQUEST_TIMEOUT_SECONDS = 30.0
USER_AGENT = "podtask-node-agent"
WATCH_TIMEOUT_SECONDS = 300


class ApiError(Exception):
    """The API answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Gone(ApiError):
    """410: the resourceVersion is too old to watch from; list again."""


@dataclass(frozen=True)
class Connection:
    """Where the API is and how to prove who we are: a client certificate over HTTPS, or
    nothing for a server that asks nothing (the embedded cluster on loopback)."""

    url: str
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path, private_dir: Path | None = None) -> Connection:
        """The current context's server and client certificate; inline `*-data` fields are
        written to files under `private_dir`."""
        config = yaml.safe_load(path.read_text())
        context_name = config.get("current-context")
        context = next(c for c in config["contexts"] if c["name"] == context_name)["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u for u in config["users"] if u["name"] == context["user"])["user"] or {}
        folder = private_dir or Path(tempfile.mkdtemp(prefix="podtask-node-"))

        def file_of(entry: JsonObject, key: str) -> Path | None:
            if entry.get(key):
                return (path.parent / str(entry[key])).resolve()
            if not entry.get(f"{key}-data"):
                return None
            data = base64.b64decode(entry[f"{key}-data"])
            target = folder / key
            target.touch(mode=0o600)
            target.write_bytes(data)
            return target

        return cls(
            url=str(cluster["cluster"]["server"]).rstrip("/"),
            ca_file=file_of(cluster["cluster"], "certificate-authority"),
            cert_file=file_of(user, "client-certificate"),
            key_file=file_of(user, "client-key"),
        )

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    reason = str(body.get("reason") or response.reason_phrase)
    message = str(body.get("message") or response.text)
    kind = Gone if response.status_code == 410 else ApiError
    return kind(response.status_code, reason, message)


class KubeApi:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._client = httpx.AsyncClient(
            base_url=connection.url,
            verify=connection.ssl_context() if connection.url.startswith("https:") else True,
            timeout=httpx.Timeout(REQUEST_TIMEOUT_SECONDS),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JsonObject:
        content = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type} if content is not None else {}
        response = await self._client.request(
            method, path, content=content, params=params, headers=headers
        )
        if response.status_code >= 400:
            raise _error(response)
        result: JsonObject = response.json() if response.content else {}
        return result

    async def get(self, path: str, params: dict[str, str] | None = None) -> JsonObject:
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: JsonObject) -> JsonObject:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: JsonObject) -> JsonObject:
        return await self.request("PUT", path, body=body)

    async def merge_patch(self, path: str, patch: JsonObject) -> JsonObject:
        return await self.request(
            "PATCH", path, body=patch, content_type="application/merge-patch+json"
        )

    async def strategic_patch(self, path: str, patch: JsonObject) -> JsonObject:
        return await self.request(
            "PATCH", path, body=patch, content_type="application/strategic-merge-patch+json"
        )

    async def delete(self, path: str, body: JsonObject | None = None) -> JsonObject:
        return await self.request("DELETE", path, body=body)

    async def watch(self, path: str, params: dict[str, str]) -> AsyncIterator[JsonObject]:
        """Events from a watch until the server ends it; Gone on 410 (as a status or an
        ERROR event)."""
        query = {
            **params,
            "watch": "1",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
        }
        timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS, read=WATCH_TIMEOUT_SECONDS + 30)
        async with self._client.stream("GET", path, params=query, timeout=timeout) as response:
            if response.status_code >= 400:
                await response.aread()
                raise _error(response)
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event: JsonObject = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    code = int(status.get("code") or 500)
                    kind = Gone if code == 410 else ApiError
                    raise kind(code, str(status.get("reason", "")), str(status.get("message")))
                yield event
