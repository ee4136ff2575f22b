"""`GET /metrics`: the API's Prometheus metrics (`podtask_api.metrics`).

Any API key may read them, read-only ones too (the dashboard's session as well), as any
endpoint that only reads; with `PODTASK_METRICS_PUBLIC=true` they need no key, for a scraper
that cannot send one (keep the path off the public Ingress then).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from podtask_api.errors import AUTH_ERRORS, CLUSTER_ERRORS, error_responses
from podtask_api.metrics import METRICS_PATH, exposition
from podtask_api.routes.access import any_key

_FORMAT = {
    "description": "The metrics in Prometheus' text format (OpenMetrics when the scraper's "
    "Accept header asks for it).",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


def metrics_router(*, public: bool) -> APIRouter:
    """The route; `public`: no key needed (`ApiSettings.metrics_public`)."""
    router = APIRouter(tags=["metrics"])
    errors = {} if public else error_responses(*AUTH_ERRORS, *CLUSTER_ERRORS)

    @router.get(
        METRICS_PATH,
        response_class=Response,
        responses={200: _FORMAT, **errors},
        dependencies=[] if public else [Depends(any_key)],
    )
    async def get_metrics(request: Request) -> Response:
        """The API's metrics: runs triggered by task, request latency by route and status, and
        its requests to Kubernetes by verb and code. The operator serves its own on its health
        port."""
        body, content_type = exposition(request.headers.get("accept", ""))
        return Response(body, media_type=content_type)

    return router
