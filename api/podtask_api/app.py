"""`create_app(settings)`: the FastAPI application, wired to its cluster."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Receive, Scope, Send

from podtask._contract.limits import MAX_BATCH_ITEMS, MAX_OUTPUT_BYTES, MAX_PAYLOAD_BYTES
from podtask._contract.wire import INSTANCE_HEADER
from podtask_api import dashboard
from podtask_api.auth import api_key_store
from podtask_api.body_checks import JsonBodyCheck, replaying
from podtask_api.cluster import KubernetesCluster
from podtask_api.cross_site import CrossSiteRefusal
from podtask_api.dashboard.sessions import session_key
from podtask_api.deployments import DeploymentCluster
from podtask_api.errors import ApiError, error_response, install_error_handlers
from podtask_api.metrics import RequestMetrics, RouteLabel
from podtask_api.routes import (
    deployments,
    keys,
    realtime,
    runner,
    runner_waits,
    runs,
    schedules,
    tasks,
)
from podtask_api.routes.metrics import metrics_router
from podtask_api.run_feed import RunFeed
from podtask_api.services import Services
from podtask_api.settings import ApiSettings
from podtask_api.task_catalog import TaskCatalog

log = logging.getLogger("podtask_api")

# Room for the options, the error's traceback and JSON escaping around the largest value.
MAX_REQUEST_BODY_BYTES = max(MAX_PAYLOAD_BYTES, MAX_OUTPUT_BYTES) * 2 + 256 * 1024
# A batch holds up to MAX_BATCH_ITEMS payloads; all its TaskRuns are built in memory at once,
# so its total is capped well below the sum of the item limits.
BATCH_PATH = "/api/v1/tasks/batch"
MAX_BATCH_REQUEST_BODY_BYTES = 16 * 1024 * 1024
# Swagger UI's and ReDoc's files (fastapi-offline's), under the dashboard's /static/.
DOCS_ASSETS = "/static/docs"
# The JSON API's paths; the rest are the dashboard's pages and forms, and /healthz, /docs.
API_PREFIX = "/api/"
# The dashboard's forms hold a key, a name, a token: small.
MAX_FORM_BODY_BYTES = 64 * 1024


def _too_large(limit: int, path: str) -> ApiError:
    if not path.startswith(API_PREFIX):
        rule = "the dashboard's forms are small; send JSON to the API under /api/"
    elif path == BATCH_PATH:
        rule = (
            f"a batch of up to {MAX_BATCH_ITEMS} items may be at most {limit} bytes in all, "
            f"each payload at most {MAX_PAYLOAD_BYTES} bytes of JSON; split the batch or pass "
            "references to large data"
        )
    else:
        rule = f"payloads may be at most {MAX_PAYLOAD_BYTES} bytes of JSON"
    return ApiError(413, "request_too_large", f"the request body is over {limit} bytes; {rule}")


class RequestBodyLimit:
    """Refuse oversized bodies, declared or chunked, without holding more than the limit."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int = MAX_REQUEST_BODY_BYTES,
        batch_limit: int = MAX_BATCH_REQUEST_BODY_BYTES,
    ) -> None:
        self.app = app
        self.limits_by_path = {BATCH_PATH: batch_limit}
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.limits_by_path.get(path, self.limit)
        if not path.startswith(API_PREFIX):
            limit = min(limit, MAX_FORM_BODY_BYTES)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(_too_large(limit, path))(scope, receive, send)
            return
        # Read the body here, up to the limit, so that an oversized chunked body gets a 413
        # (FastAPI would turn an error raised while it reads into a generic 400).
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await error_response(_too_large(limit, path))(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, replaying(b"".join(chunks), receive), send)


class JsonBodies:
    """Read every request body to the JSON API (`/api/`) as JSON, the only format it takes.

    `curl -d` sends `application/x-www-form-urlencoded` unless told otherwise;
    a user who pasted JSON should get their run, not a 422 about a form. The dashboard's
    pages (outside `/api/`) take real forms, so their bodies keep their content type.
    """

    _NOT_JSON = (b"", b"application/x-www-form-urlencoded", b"text/plain")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("POST", "PUT", "PATCH")
            and scope.get("path", "").startswith(API_PREFIX)
        ):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            declared = dict(scope["headers"]).get(b"content-type", b"")
            if declared.split(b";")[0].strip().lower() in self._NOT_JSON:
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The API for `settings`, over the Kubernetes cluster and namespace they point at."""
    settings = settings or ApiSettings()
    cluster = KubernetesCluster.connect(settings.namespace, settings.kubeconfig)
    feed = RunFeed(cluster)
    catalog = TaskCatalog(cluster)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        feed.close()  # its watch thread ends with the app
        catalog.close()  # and so does the Tasks'

    # /docs (Swagger UI) and /redoc load their scripts and styles from this API, not a CDN:
    # they work on a machine without internet.
    app: FastAPI = FastAPIOffline(
        title="podtask API",
        version="0.1.0",
        description="Trigger podtask tasks, read their runs, and serve the runner's callbacks. "
        "Authorize with an API key (`podtask keys create`; `podtask dev` prints one).",
        static_url=DOCS_ASSETS,
        favicon_url="/static/favicon.svg",
        lifespan=lifespan,
    )
    signing_key = session_key(
        settings.session_secret.get_secret_value(),
        settings.runner_token_secret.get_secret_value(),
    )
    if signing_key is None:
        log.warning(
            "neither PODTASK_SESSION_SECRET nor PODTASK_RUNNER_TOKEN_SECRET is set: the "
            "dashboard's sessions are signed with a random key, and end when the API restarts"
        )
        signing_key = secrets.token_bytes(32)
    Services(
        settings=settings,
        cluster=cluster,
        api_keys=api_key_store(settings, cluster.api_client),
        deployments=DeploymentCluster(cluster.api_client, settings.namespace),
        run_feed=feed,
        tasks=catalog,
        session_key=signing_key,
    ).attach(app)
    # The server ends the event streams when it starts to stop (`http_protocol.ApiServer`).
    app.state.stop_streams = feed.close
    install_error_handlers(app)
    # Outermost last: the route that served a request noted (for the metrics), a browser's
    # write from another site refused, content types made JSON, then the size limit, then the
    # JSON checked.
    app.add_middleware(RouteLabel)
    app.add_middleware(JsonBodyCheck)
    app.add_middleware(RequestBodyLimit)
    app.add_middleware(JsonBodies)
    app.add_middleware(CrossSiteRefusal)
    # Outermost: every request is timed, whichever layer answers it.
    app.add_middleware(RequestMetrics)
    # `realtime` first: its `/runs/events` is not the run `events` of `runs`' `/runs/{run_id}`.
    for router in (
        realtime.router,
        runs.triggers,
        runs.router,
        tasks.router,
        schedules.router,
        deployments.router,
        runner.router,
        runner_waits.router,
        keys.router,
        metrics_router(public=settings.metrics_public),
    ):
        app.include_router(router)
    dashboard.install(app)

    @app.get("/healthz")
    async def healthz(response: Response) -> dict[str, str]:
        if settings.instance:
            response.headers[INSTANCE_HEADER] = settings.instance
        return {"status": "ok"}

    return app
