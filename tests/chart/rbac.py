"""Kubernetes RBAC for a ServiceAccount, from the chart's rendered Roles and bindings.

The embedded cluster authorizes nothing, so `RbacProxy` stands in front of it and does what
a real API server's RBAC authorizer does for one ServiceAccount: it derives the request's
attributes (verb, API group, resource/subresource, namespace, name) from the URL as the
API server does, grants it only when a rule of a Role or ClusterRole bound to that account
matches, and otherwise answers 403 Forbidden in the API server's shape. Allowed requests go
through to the embedded cluster unchanged, streamed (watches included). A process pointed at
the proxy therefore runs with exactly the permissions the chart gives it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

# Headers that belong to one hop of a connection, never forwarded.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass(frozen=True)
class Attributes:
    """A resource request as the RBAC authorizer sees it."""

    verb: str
    group: str
    resource: str  # "pods", or "pods/log" for a subresource
    namespace: str | None
    name: str | None

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else " (cluster scope)"
        named = f" {self.name!r}" if self.name else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource}{named}{where}"


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes | None:
    """The attributes of a resource request; None for a non-resource URL (discovery, /version,
    /openapi), which every authenticated account may read (system:discovery)."""
    parts = [part for part in path.split("/") if part]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None  # the group version's resource list
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else None
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    watching = query.get("watch", "").lower() in ("true", "1")
    if method in ("GET", "HEAD"):
        verb = "get" if name is not None else ("watch" if watching else "list")
    elif method == "POST":
        verb = "create"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "patch"
    elif method == "DELETE":
        verb = "delete" if name is not None else "deletecollection"
    else:
        verb = method.lower()
    return Attributes(verb, group, resource, namespace, name)


@dataclass(frozen=True)
class Grant:
    """The rules of one role as one binding grants them: in `namespace`, or everywhere."""

    namespace: str | None
    rules: tuple[Mapping[str, Any], ...]


def grants_for(objects: Iterable[Mapping[str, Any]], namespace: str, account: str) -> list[Grant]:
    """What the RoleBindings and ClusterRoleBindings among `objects` grant the ServiceAccount
    `namespace/account`, resolved to the rules of the Roles and ClusterRoles they name."""
    objects = list(objects)
    roles = {
        (obj["metadata"].get("namespace"), obj["metadata"]["name"]): tuple(obj.get("rules") or ())
        for obj in objects
        if obj["kind"] == "Role"
    }
    cluster_roles = {
        obj["metadata"]["name"]: tuple(obj.get("rules") or ())
        for obj in objects
        if obj["kind"] == "ClusterRole"
    }
    grants: list[Grant] = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
        if not any(
            {k: s.get(k) for k in ("kind", "name", "namespace")} == subject
            for s in binding.get("subjects") or ()
        ):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        rules = roles[scope, ref["name"]] if ref["kind"] == "Role" else cluster_roles[ref["name"]]
        grants.append(Grant(scope, rules))
    return grants


def _matches(rule: Mapping[str, Any], request: Attributes) -> bool:
    def has(key: str, value: str) -> bool:
        allowed = rule.get(key) or ()
        return value in allowed or "*" in allowed

    if not (
        has("apiGroups", request.group)
        and has("resources", request.resource)
        and has("verbs", request.verb)
    ):
        return False
    names = rule.get("resourceNames") or ()
    # A rule limited to names never matches a create, a list or a watch (they carry no name).
    return not names or (request.name is not None and request.name in names)


def allows(grants: Iterable[Grant], request: Attributes) -> bool:
    for grant in grants:
        if grant.namespace is not None and grant.namespace != request.namespace:
            continue
        if any(_matches(rule, request) for rule in grant.rules):
            return True
    return False


@dataclass(frozen=True)
class Decision:
    request: Attributes
    allowed: bool


class RbacProxy:
    """An HTTP proxy to `upstream` that authorizes every request as `user` with `grants`."""

    def __init__(self, upstream: str, grants: list[Grant], user: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.grants = grants
        self.user = user
        self.decisions: list[Decision] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.url = ""

    # --- what it saw ------------------------------------------------------------------

    def seen(self) -> list[Decision]:
        with self._lock:
            return list(self.decisions)

    def denied(self) -> list[Attributes]:
        return [d.request for d in self.seen() if not d.allowed]

    # --- running ----------------------------------------------------------------------

    def start(self) -> RbacProxy:
        self._thread = threading.Thread(target=self._main, name=f"rbac-{self.user}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the RBAC proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> RbacProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # No timeouts: watches stay open for minutes; no decompression: bytes pass as they are.
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None), auto_decompress=False
        ) as session:
            self._session = session
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{path:.*}", self._handle)
            runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

    def _forbidden(self, request: Attributes) -> web.Response:
        resource, _, sub = request.resource.partition("/")
        where = f' in the namespace "{request.namespace}"' if request.namespace else ""
        named = f' "{request.name}"' if request.name else ""
        message = (
            f'{resource}{named} is forbidden: User "{self.user}" cannot {request.verb} '
            f'resource "{resource}"' + (f' subresource "{sub}"' if sub else "") + " in API "
            f'group "{request.group}"{where}'
        )
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "Forbidden",
            "details": {"name": request.name or "", "group": request.group, "kind": resource},
            "code": 403,
        }
        return web.json_response(body, status=403)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        attributes = request_attributes(request.method, request.path, request.query)
        if attributes is not None:
            allowed = allows(self.grants, attributes)
            with self._lock:
                self.decisions.append(Decision(attributes, allowed))
            if not allowed:
                return self._forbidden(attributes)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body or None
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP},
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
