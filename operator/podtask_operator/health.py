"""The operator's liveness: an HTTP endpoint that goes unhealthy when the watch goes quiet;
and its readiness (`GET /readyz`): 200 once this replica leads and has started serving (its
queues rebuilt from the cluster, its watches about to start), 503 before.

This module owns `WATCH_HEARTBEAT`, which every kopf event handler beats on every watch event;
the pure verdict on it (`assess`); the kopf handler on Lease events that keeps the beats coming
(the leader renews its Lease every few seconds, so a healthy leader sees a Lease event that
often even with no runs at all; registered on import); and the probe's endpoint, served with
aiohttp (kopf's own HTTP library), which serves the operator's Prometheus metrics too
(`GET /metrics`, `metrics.REGISTRY`), a standby's as well.

The endpoint is our own rather than kopf's `liveness_endpoint` because kopf's exists only once
kopf runs, and a standby, still waiting for the Lease before kopf starts, must answer healthy:
otherwise Kubernetes would keep restarting every standby.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf
from aiohttp import web
from prometheus_client.exposition import choose_encoder

from podtask_operator.metrics import METRICS_PATH, REGISTRY

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"


class WatchHeartbeat:
    """When this process last received a watch event (monotonic seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.last_beat: float | None = None

    def beat(self) -> None:
        """Record a watch event. Cheap and synchronous: call it first in every event handler."""
        self.last_beat = self._clock()


WATCH_HEARTBEAT = WatchHeartbeat()


@kopf.on.event("coordination.k8s.io", "v1", "leases")
async def lease_event(**_: Any) -> None:
    """Any Lease event proves the watch is alive; the leader's own renewals make them steady."""
    WATCH_HEARTBEAT.beat()


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    role: str  # "standby" or "leader"
    seconds_since_watch_event: float | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "role": self.role,
            "secondsSinceWatchEvent": self.seconds_since_watch_event,
            "reason": self.reason,
        }


def assess(
    *,
    leading: bool,
    last_beat: float | None,
    leading_since: float | None,
    now: float,
    stall_seconds: float,
    detect_stalls: bool = True,
) -> HealthReport:
    """The probe's verdict. A standby is healthy: it watches nothing yet. A leader is unhealthy
    once neither a watch event nor the start of its leadership is within `stall_seconds`."""
    if not leading:
        return HealthReport(True, "standby", None, "waiting for the Lease")
    since = None if last_beat is None else max(0.0, now - last_beat)
    if not detect_stalls:
        return HealthReport(True, "leader", since, "stall detection is off")
    # Before the first event, the quiet time counts from when this replica started leading.
    reference = max((t for t in (last_beat, leading_since) if t is not None), default=now)
    quiet = now - reference
    if quiet > stall_seconds:
        return HealthReport(
            False, "leader", since, f"no watch event for {quiet:.0f}s (limit {stall_seconds:g}s)"
        )
    return HealthReport(True, "leader", since, "watch events are arriving")


class OperatorHealth:
    """What the endpoint reports on: the replica's role and the watch heartbeat."""

    def __init__(
        self,
        heartbeat: WatchHeartbeat,
        *,
        stall_seconds: float,
        detect_stalls: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.heartbeat = heartbeat
        self.stall_seconds = stall_seconds
        self.detect_stalls = detect_stalls
        self._clock = clock
        self._leading_since: float | None = None
        self._serving = False

    def start_leading(self) -> None:
        self._leading_since = self._clock()

    def start_serving(self) -> None:
        """The leader's start-up is done: what it finds in the cluster from now on, it acts on."""
        self._serving = True

    def readiness(self) -> tuple[bool, str]:
        """Whether this replica serves, and what it is doing otherwise."""
        if self._serving:
            return True, "serving"
        if self._leading_since is None:
            return False, "waiting for the Lease"
        return False, "starting: rebuilding its queues from the cluster"

    def report(self) -> HealthReport:
        return assess(
            leading=self._leading_since is not None,
            last_beat=self.heartbeat.last_beat,
            leading_since=self._leading_since,
            now=self._clock(),
            stall_seconds=self.stall_seconds,
            detect_stalls=self.detect_stalls,
        )


@dataclass(frozen=True)
class HealthAddress:
    host: str
    port: int
    path: str = HEALTH_PATH

    @classmethod
    def from_url(cls, url: str) -> HealthAddress:
        """`http://0.0.0.0:8080/healthz` (kopf's `--liveness` form)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or parts.port is None:
            raise ValueError(f"expected http://HOST:PORT/PATH, got {url!r}")
        return cls(parts.hostname or "0.0.0.0", parts.port, parts.path or HEALTH_PATH)


def _response(status: int, body: dict[str, Any]) -> web.Response:
    response = web.json_response(body, status=status, headers={"Cache-Control": "no-store"})
    # One request per connection: a probe opens a new one each time.
    response.force_close()
    return response


def _metrics(request: web.BaseRequest) -> web.Response:
    """The registry in the format the scraper asks for (Prometheus text, or OpenMetrics)."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = web.Response(body=encode(REGISTRY), headers={"Content-Type": content_type})
    response.force_close()
    return response


async def serve_health(health: OperatorHealth, address: HealthAddress) -> asyncio.Server:
    """Start answering `GET <path>` (and HEAD): 200 when healthy, 503 when not, JSON either
    way; `GET /readyz` likewise, for whether it serves; and `GET /metrics`. Port 0 picks a
    free port (see the returned server's sockets); close the server to stop."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return _response(405, {})
        if request.path == METRICS_PATH:
            # Read on the event loop, as the scheduler's state the queue gauges read is.
            return _metrics(request)
        if request.path == READY_PATH and address.path != READY_PATH:
            ready, reason = health.readiness()
            return _response(200 if ready else 503, {"ready": ready, "reason": reason})
        if request.path != address.path:
            return _response(404, {})
        report = health.report()
        return _response(200 if report.healthy else 503, report.to_json())

    # aiohttp's low-level server: one handler, no router, no access log.
    server = await asyncio.get_running_loop().create_server(
        web.Server(handle), address.host, address.port
    )
    port = server.sockets[0].getsockname()[1]
    log.info(
        "health endpoint at http://%s:%d%s, metrics at %s",
        address.host,
        port,
        address.path,
        METRICS_PATH,
    )
    return server
