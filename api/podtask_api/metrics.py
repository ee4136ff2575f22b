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
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podtask._control.kube_requests import Client, KubeRequest, report_requests

METRICS_PATH = "/metrics"
# The route label of a request no route matched (a 404): one series for all of them.
UNMATCHED = "unmatched"
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


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The template of the route that serves `scope`, as the router would pick it: the first
    full match, else the first partial one (a method it does not take), else `UNMATCHED`."""
    partial: BaseRoute | None = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return _template(route)
        if match is Match.PARTIAL and partial is None:
            partial = route
    return UNMATCHED if partial is None else _template(partial)


def _template(route: BaseRoute) -> str:
    path = str(getattr(route, "path", "") or "")
    return f"{path}/{{path}}" if isinstance(route, Mount) else path or UNMATCHED


class RequestMetrics:
    """Times every HTTP request into `podtask_api_request_duration_seconds`. Outermost, so that
    what the other middleware answer (a 413, a cross-site refusal) counts too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        observed = False

        def observe(status: int) -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            router: Any = scope["app"].router
            method = scope["method"] if scope["method"] in _METHODS else "other"
            REQUEST_DURATION.labels(
                route=route_template(router.routes, scope), method=method, status=str(status)
            ).observe(time.perf_counter() - began)

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                observe(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except Exception:
            observe(500)  # what the server answers for it
            raise
