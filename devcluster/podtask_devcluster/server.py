"""HTTP routes of the embedded API server: routing, content negotiation (JSON or Table),
pod logs, discovery, health and request accounting. Decoding bodies is `request_bodies`'s,
serving a watch `watch`'s, and the rules about objects themselves are in `registry`."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from podtask_devcluster import errors, request_bodies, tables
from podtask_devcluster.custom_resources import FieldValidation
from podtask_devcluster.discovery import ResourceType, openapi_v3_document, openapi_v3_index
from podtask_devcluster.kubeapi import USER_AGENT as NODE_USER_AGENT
from podtask_devcluster.kubeletproxy import KubeletProxy, container_of
from podtask_devcluster.registry import Registry
from podtask_devcluster.request_options import DeleteOptions, WriteOptions
from podtask_devcluster.selectors import (
    FieldSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from podtask_devcluster.store import JsonObject
from podtask_devcluster.watch import WatchRequest, WatchStream

log = logging.getLogger(__name__)

# Behaviour follows kube-apiserver v1.37 (tests/conformance), but /version says 1.30: newer
# kubectl sends built-in objects as protobuf to newer servers, which this one does not speak.
KUBERNETES_VERSION = {"major": "1", "minor": "30", "gitVersion": "v1.30.0"}
NAMESPACE_SUBRESOURCES = ("status", "finalize")
# The health endpoints echo the instance id the cluster was started with, so whoever started it
# can tell it from another server answering on its port.
INSTANCE_HEADER = "Podtask-Instance"
VERBS = ("create", "update", "patch", "delete", "deletecollection", "get", "list", "watch")


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_dumps(body), status_code=status, media_type="application/json")


def error_response(error: errors.StatusError, warnings: list[str] | None = None) -> Response:
    response = json_response(error.status(), error.code)
    _add_warnings(response, warnings or [])
    return response


def _add_warnings(response: Response, warnings: list[str]) -> None:
    for warning in warnings:
        response.headers.append("Warning", f"299 - {json.dumps(warning)}")


def _not_found_path() -> errors.StatusError:
    return errors.StatusError(404, "NotFound", "the server could not find the requested resource")


def table_version(accept: str | None) -> str | None:
    """`v1`/`v1beta1` when the client accepts a meta.k8s.io Table, else None."""
    if not accept:
        return None
    for alternative in accept.split(","):
        params = {}
        for part in alternative.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            params[key.strip()] = value.strip()
        if params.get("as") == "Table" and params.get("g", "meta.k8s.io") == "meta.k8s.io":
            version = params.get("v", "v1")
            if version in ("v1", "v1beta1"):
                return version
    return None


@dataclass(frozen=True)
class Target:
    resource: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool


class ApiServer:
    def __init__(
        self,
        registry: Registry,
        stopping: asyncio.Event,
        kubelets: KubeletProxy | None = None,
    ) -> None:
        self.registry = registry
        self.catalog = registry.catalog
        self.store = registry.store
        self.stopping = stopping
        self.kubelets = kubelets
        self.server_address = "127.0.0.1:0"
        self.instance = ""
        # Every key exists from the start, so other threads can copy the counter safely.
        self.counts: collections.Counter[str] = collections.Counter(
            {verb: 0 for verb in (*VERBS, "nonresource")}
        )
        # The same, without the requests of the cluster's own node (its heartbeats and pod
        # status writes): what clients cost, for tests that count them.
        self.client_counts: collections.Counter[str] = collections.Counter(
            {verb: 0 for verb in (*VERBS, "nonresource")}
        )
        # By verb, group, resource, subresource and whether the node sent it: the labels of
        # kube-apiserver's `apiserver_request_total` (and `node`, ours), for /metrics.
        self.resource_counts: collections.Counter[tuple[str, str, str, str, bool]] = (
            collections.Counter()
        )
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self.dispatch,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
                )
            ]
        )

    # ------------------------------------------------------------ entry point

    async def dispatch(self, request: Request) -> Response:
        parts = [p for p in request.url.path.split("/") if p]
        try:
            return await self._route(request, parts)
        except errors.StatusError as error:
            # Like kube-apiserver, a refused write still carries the warnings found on the way.
            return error_response(error, getattr(request.state, "warnings", None))
        except SelectorError as error:
            return error_response(errors.bad_request(str(error)))
        except Exception as error:
            log.exception("internal error serving %s %s", request.method, request.url.path)
            return json_response(
                errors.StatusError(500, "InternalError", f"internal error: {error}").status(), 500
            )

    def _count(self, request: Request, verb: str, target: Target | None = None) -> None:
        self.counts[verb] += 1
        node = request.headers.get("user-agent", "").startswith(NODE_USER_AGENT)
        if not node:
            self.client_counts[verb] += 1
        if target is not None:
            resource = target.resource
            key = (verb, resource.group, resource.plural, target.subresource or "", node)
            self.resource_counts[key] += 1

    async def _route(self, request: Request, parts: list[str]) -> Response:
        if not parts or parts[0] not in ("api", "apis"):
            self._count(request, "nonresource")
            return self._non_resource(parts)
        if parts[0] == "api":
            if len(parts) == 1:
                self._count(request, "nonresource")
                return json_response(self.catalog.api_versions(self.server_address))
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) < 3:
                self._count(request, "nonresource")
                if len(parts) == 1:
                    return json_response(self.catalog.api_group_list())
                group_doc = self.catalog.api_group(parts[1])
                if group_doc is None:
                    raise _not_found_path()
                return json_response(group_doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            self._count(request, "nonresource")
            resource_list = self.catalog.api_resource_list(group, version)
            if resource_list is None:
                raise _not_found_path()
            return json_response(resource_list)
        target = self._target(group, version, rest)
        return await self._resource(request, target)

    def _non_resource(self, parts: list[str]) -> Response:
        path = "/".join(parts)
        if path == "version":
            return json_response(
                {
                    **KUBERNETES_VERSION,
                    "gitCommit": "podtask-devcluster",
                    "gitTreeState": "clean",
                    "buildDate": "2024-01-01T00:00:00Z",
                    "goVersion": "python",
                    "compiler": "python",
                    "platform": "linux/amd64",
                }
            )
        if path in ("healthz", "readyz", "livez") or path.startswith(
            ("healthz/", "readyz/", "livez/")
        ):
            headers = {INSTANCE_HEADER: self.instance} if self.instance else None
            return Response(b"ok", media_type="text/plain", headers=headers)
        if parts[:2] == ["openapi", "v3"]:
            if len(parts) == 2:
                return json_response(openapi_v3_index(self.catalog))
            rest = parts[2:]
            if rest[0] == "api" and len(rest) == 2:
                return json_response(openapi_v3_document(self.catalog, "", rest[1]))
            if rest[0] == "apis" and len(rest) == 3:
                return json_response(openapi_v3_document(self.catalog, rest[1], rest[2]))
        if path == "metrics":
            return Response(self.metrics_text().encode(), media_type="text/plain; version=0.0.4")
        if not parts:
            return json_response(
                {
                    "paths": [
                        "/api",
                        "/api/v1",
                        "/apis",
                        "/healthz",
                        "/livez",
                        "/metrics",
                        "/readyz",
                        "/version",
                    ]
                }
            )
        raise _not_found_path()

    def metrics_text(self) -> str:
        lines = [
            "# HELP apiserver_request_total Requests served by the podtask dev cluster, by verb.",
            "# TYPE apiserver_request_total counter",
        ]
        by_resource: collections.Counter[str] = collections.Counter()
        for (verb, group, plural, subresource, node), count in sorted(
            list(self.resource_counts.items())
        ):
            by_resource[verb] += count
            lines.append(
                f'apiserver_request_total{{verb="{verb}",group="{group}",resource="{plural}",'
                f'subresource="{subresource}",node="{str(node).lower()}"}} {count}'
            )
        # What no resource names (discovery, health, version), under `resource=""`.
        for verb, count in sorted(self.counts.items()):
            if count > by_resource[verb]:
                lines.append(
                    f'apiserver_request_total{{verb="{verb}",group="",resource="",'
                    f'subresource="",node=""}} {count - by_resource[verb]}'
                )
        return "\n".join(lines) + "\n"

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        watch_path = False
        if rest[0] == "watch":
            watch_path = True
            rest = rest[1:]
        namespace: str | None = None
        if (
            rest
            and rest[0] == "namespaces"
            and len(rest) >= 3
            and (rest[2] not in NAMESPACE_SUBRESOURCES)
        ):
            namespace = rest[1]
            rest = rest[2:]
        if not rest or len(rest) > 3:
            raise _not_found_path()
        resource = self.catalog.lookup(group, version, rest[0])
        if resource is None:
            raise _not_found_path()
        if namespace is not None and not resource.namespaced:
            raise _not_found_path()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and not (
            (subresource == "status" and resource.status_subresource)
            or (subresource in ("log", "binding") and resource.log_subresource)
        ):
            raise _not_found_path()
        return Target(resource, namespace, name, subresource, watch_path)

    # ------------------------------------------------------------ resources

    async def _resource(self, request: Request, target: Target) -> Response:
        params = {k: v[-1] for k, v in parse_qs(request.url.query, keep_blank_values=True).items()}
        method = request.method
        resource = target.resource
        namespace = target.namespace or ""
        options_kind = {"PUT": "UpdateOptions", "PATCH": "PatchOptions"}.get(
            method, "CreateOptions"
        )
        validation = FieldValidation.parse(params.get("fieldValidation"), options_kind)
        request.state.warnings = validation.warnings
        options = WriteOptions(
            dry_run=bool(params.get("dryRun")),
            validation=validation,
            field_manager=params.get("fieldManager"),
            force=params.get("force") in ("true", "1"),
        )
        if method in ("GET", "HEAD"):
            if target.subresource == "log" and target.name is not None:
                self._count(request, "get", target)
                return await self._logs(request, namespace, target.name, params)
            watching = target.watch_path or params.get("watch") in ("true", "1")
            if watching:
                self._count(request, "watch", target)
                fields = parse_field_selector(params.get("fieldSelector"))
                if target.name is not None:
                    fields = FieldSelector(
                        (
                            *fields.requirements,
                            *parse_field_selector(f"metadata.name={target.name}").requirements,
                        )
                    )
                return self._watch(request, target, params, fields)
            if target.name is not None:
                self._count(request, "get", target)
                obj = self.registry.get(resource, namespace, target.name)
                return self._object_response(request, resource, obj, params)
            self._count(request, "list", target)
            return self._list(request, target, params)
        if method == "POST":
            self._count(request, "create", target)
            if target.subresource == "binding" and target.name is not None:
                body = await self._body(request, validation)
                self.registry.bind(namespace, target.name, body)
                return json_response(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "code": 201,
                    },
                    201,
                )
            if target.name is not None:
                raise errors.method_not_allowed(
                    f"POST is not supported on a named {resource.kind} (use PUT or PATCH)"
                )
            body = await self._body(request, validation)
            created = self.registry.create(resource, target.namespace, body, options)
            return self._object_response(
                request, resource, created, params, status=201, validation=validation
            )
        if target.name is None:
            if method == "DELETE":
                self._count(request, "deletecollection", target)
                deletion = await self._delete_options(request, params)
                deleted = self.registry.delete_collection(
                    resource,
                    target.namespace,
                    parse_label_selector(params.get("labelSelector")),
                    parse_field_selector(params.get("fieldSelector")),
                    deletion,
                )
                return json_response(self._list_body(resource, deleted, None, None, None))
            raise errors.method_not_allowed(f"{method} needs the name of a {resource.kind}")
        if method == "PUT":
            self._count(request, "update", target)
            body = await self._body(request, validation)
            updated = self.registry.update(
                resource, namespace, target.name, body, options, target.subresource
            )
            return self._object_response(request, resource, updated, params, validation=validation)
        if method == "PATCH":
            self._count(request, "patch", target)
            raw = await self._raw_body(request)
            patched, status = self.registry.patch(
                resource,
                namespace,
                target.name,
                request.headers.get("content-type", ""),
                raw,
                options,
                target.subresource,
            )
            return self._object_response(
                request, resource, patched, params, status=status, validation=validation
            )
        if method == "DELETE":
            self._count(request, "delete", target)
            deletion = await self._delete_options(request, params)
            removed = self.registry.delete(resource, namespace, target.name, deletion)
            scope = namespace if resource.namespaced else ""
            pending = self.store.get(resource.storage_key, scope, target.name) is not None
            if pending or resource.returns_deleted_object or deletion.dry_run:
                return self._object_response(request, resource, removed, params)
            return json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": target.name,
                        **({"group": resource.group} if resource.group else {}),
                        "kind": resource.plural,
                        "uid": removed["metadata"].get("uid", ""),
                    },
                }
            )
        raise errors.method_not_allowed(f"method {method} is not supported")

    async def _raw_body(self, request: Request) -> bytes:
        return request_bodies.within_limit(await request.body())

    async def _body(self, request: Request, validation: FieldValidation) -> Any:
        raw = await self._raw_body(request)
        content_type = request.headers.get("content-type", "application/json").lower()
        return request_bodies.decoded_body(raw, content_type, validation)

    async def _delete_options(self, request: Request, params: dict[str, str]) -> DeleteOptions:
        return request_bodies.delete_options(await request.body(), params)

    # ------------------------------------------------------------ responses

    def _object_response(
        self,
        request: Request,
        resource: ResourceType,
        obj: JsonObject,
        params: dict[str, str],
        status: int = 200,
        validation: FieldValidation | None = None,
    ) -> Response:
        presented = self.registry.present(resource, obj)
        version = table_version(request.headers.get("accept"))
        if version is not None and status == 200 and request.method == "GET":
            table = tables.build_table(
                [presented],
                self._columns(resource),
                table_version=version,
                include_object=params.get("includeObject", "Metadata"),
            )
            return json_response(table)
        response = json_response(presented, status)
        _add_warnings(response, validation.warnings if validation is not None else [])
        return response

    def _columns(self, resource: ResourceType) -> tuple[list[JsonObject], tables.RowFunction]:
        return tables.columns_for(resource.group, resource.plural, resource.printer_columns)

    def _list_body(
        self,
        resource: ResourceType,
        items: list[JsonObject],
        resource_version: str | None,
        continue_token: str | None,
        remaining: int | None,
    ) -> JsonObject:
        metadata: JsonObject = {
            "resourceVersion": resource_version or str(self.store.resource_version)
        }
        if continue_token:
            metadata["continue"] = continue_token
        if remaining is not None:
            metadata["remainingItemCount"] = remaining
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": metadata,
            "items": [self.registry.present(resource, obj) for obj in items],
        }

    def _list(self, request: Request, target: Target, params: dict[str, str]) -> Response:
        limit_text = params.get("limit")
        try:
            limit = int(limit_text) if limit_text else None
        except ValueError as error:
            raise errors.bad_request(f"invalid limit {limit_text!r}") from error
        result = self.registry.list_objects(
            target.resource,
            target.namespace,
            parse_label_selector(params.get("labelSelector")),
            parse_field_selector(params.get("fieldSelector")),
            limit,
            params.get("continue") or None,
        )
        body = self._list_body(
            target.resource,
            result.items,
            result.resource_version,
            result.continue_token,
            result.remaining,
        )
        version = table_version(request.headers.get("accept"))
        if version is not None:
            return json_response(
                tables.build_table(
                    body["items"],
                    self._columns(target.resource),
                    table_version=version,
                    include_object=params.get("includeObject", "Metadata"),
                    list_metadata=body["metadata"],
                )
            )
        return json_response(body)

    # ------------------------------------------------------------ watch

    def _watch(
        self,
        request: Request,
        target: Target,
        params: dict[str, str],
        fields: FieldSelector,
    ) -> Response:
        resource = target.resource
        watch = WatchRequest.parse(
            params,
            target.namespace if resource.namespaced else None,
            fields,
            table_version(request.headers.get("accept")),
        )
        stream = WatchStream(self.store, resource, watch)
        return StreamingResponse(
            stream.lines(self.stopping),
            media_type="application/json",
            headers={"Cache-Control": "no-cache, private"},
        )

    # ------------------------------------------------------------ pod logs

    async def _logs(
        self, request: Request, namespace: str, name: str, params: dict[str, str]
    ) -> Response:
        pods = self.catalog.lookup("", "v1", "pods")
        nodes = self.catalog.lookup("", "v1", "nodes")
        assert pods is not None and nodes is not None
        pod = self.registry.get(pods, namespace, name)
        container = container_of(pod, name, params.get("container"))
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return Response(b"", media_type="text/plain")  # kube: no host, no location
        node = self.registry.get(nodes, "", node_name)
        if self.kubelets is None:
            raise errors.StatusError(500, "InternalError", "no kubelet client configured")
        chunks, followed = await self.kubelets.logs(node, pod, container, params)
        if followed:
            return StreamingResponse(chunks, media_type="text/plain")
        body = b"".join([chunk async for chunk in chunks])
        return Response(body, media_type="text/plain")
