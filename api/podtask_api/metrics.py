"""The API's Prometheus metrics: their definitions, the registry `GET /metrics` serves
(`routes/metrics`), the middleware that times every request (`RequestMetrics`), and the calls
that record what the API did.

- `podtask_runs_triggered_total{task}`: runs created by a trigger, a batch or a replay, counted
  where they are created (`run_creation`): a trigger answered with an existing run
  (idempotency) creates none; a batch counts its runs once it is committed.
- `podtask_api_request_duration_seconds{route,method,status}`: from a request's arrival to its
  response's start, by route template (`/api/v1/runs/{run_id}`, never the path itself, so one
  series per route), method and status. A streamed response (an event stream, a followed log)
  counts until its headers, not for as long as it streams.
- `podtask_kube_requests_total{verb,resource,code}`: the API's requests to Kubernetes
  (`podtask._control.kube_requests`, hooked on the client `KubernetesCluster.connect` makes).

One registry per process. `python -m podtask_api` is one uvicorn process (no worker
processes; the chart scales the API with replicas, each scraped on its own), so no
multiprocess mode is needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podtask._control.kube_requests import Client, KubeRequest, report_requests

METRICS_PATH = "/metrics"
# The route label of a request no route matched (a 404): one series for all of them.
UNMATCHED = "unmatched"
# Where `RequestMetrics` hands `RouteLabel` the list to note the route in.
_ROUTE_KEY = "podtask.route"
# Methods are labels as they are; any other (a client's invention) is one label.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

RUNS_TRIGGERED = Counter(
    "podtask_runs_triggered",
    "Runs created by a trigger, a batch (once committed) or a replay, by task.",
    ["task"],
    registry=REGISTRY,
)
REQUEST_DURATION = Histogram(
    "podtask_api_request_duration_seconds",
    "From a request's arrival to its response's start, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
KUBE_REQUESTS = Counter(
    "podtask_kube_requests",
    "HTTP requests to the Kubernetes API, by verb, resource and answer code ('error': none).",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)


def runs_triggered(task_ids: Iterable[str]) -> None:
    """Runs of these tasks (one per item) were created."""
    for task_id in task_ids:
        RUNS_TRIGGERED.labels(task=task_id).inc()


def _kube_request(request: KubeRequest, code: str) -> None:
    KUBE_REQUESTS.labels(verb=request.verb, resource=request.resource, code=code).inc()


def count_kube_requests(api_client: Client) -> Client:
    """Count every request `api_client` sends; `api_client` itself."""
    return report_requests(api_client, _kube_request)


def exposition(accept: str) -> tuple[bytes, str]:
    """The registry in the format the scraper accepts (Prometheus text, or OpenMetrics), and
    its content type."""
    encode, content_type = choose_encoder(accept)
    return encode(REGISTRY), content_type


def route_label(scope: Scope, root_path: str) -> str:
    """The route template of a request the router has served: its route's (FastAPI and
    Starlette put the route they chose in the scope, a 405's too), or a mount's prefix (a
    mount extends the root path), else `UNMATCHED`. `root_path`: the scope's before routing."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    mounted = str(scope.get("root_path") or "")
    if mounted != root_path and mounted.startswith(root_path):
        return f"{mounted[len(root_path) :]}/{{path}}"
    return UNMATCHED


class RequestMetrics:
    """Times every HTTP request into `podtask_api_request_duration_seconds`. Outermost, so that
    what the other middleware answer (a 413, a cross-site refusal) counts too: under
    `UNMATCHED`, as no route served them. The route comes from `RouteLabel`, innermost."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        method = scope["method"] if scope["method"] in _METHODS else "other"
        # Shared with `RouteLabel` even through the copies of the scope a middleware makes.
        route: list[str] = []
        observed = False

        def observe(status: int) -> None:
            nonlocal observed
            if not observed:
                observed = True
                label = route[0] if route else UNMATCHED
                REQUEST_DURATION.labels(route=label, method=method, status=str(status)).observe(
                    time.perf_counter() - began
                )

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                observe(int(message["status"]))
            await send(message)

        try:
            await self.app({**scope, _ROUTE_KEY: route}, receive, timed_send)
        except Exception:
            observe(500)  # what the server answers for it
            raise


class RouteLabel:
    """Innermost: notes the template of the route that served the request (`route_label`)
    for `RequestMetrics`, when the response starts, the router having chosen its route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.get(_ROUTE_KEY)
        if scope["type"] != "http" or route is None:
            await self.app(scope, receive, send)
            return
        root_path = str(scope.get("root_path") or "")

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not route:
                route.append(route_label(scope, root_path))
            await send(message)

        await self.app(scope, receive, noting_send)
