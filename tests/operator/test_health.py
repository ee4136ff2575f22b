"""Liveness: the staleness verdict, and the endpoint that serves it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from podtask_operator.health import (
    HealthAddress,
    OperatorHealth,
    WatchHeartbeat,
    assess,
    serve_health,
)


@pytest.mark.parametrize(
    ("last_beat", "leading_since", "now", "healthy"),
    [
        (None, 100.0, 100.0, True),  # just started leading, no event yet
        (None, 100.0, 160.0, True),  # at the limit
        (None, 100.0, 160.1, False),  # never an event since leading began
        (150.0, 100.0, 200.0, True),
        (150.0, 100.0, 210.1, False),
        (50.0, 100.0, 150.0, True),  # a beat from before leading does not shorten the grace
    ],
)
def test_a_leader_is_unhealthy_once_the_watch_is_quiet_too_long(
    last_beat: float | None, leading_since: float, now: float, healthy: bool
) -> None:
    report = assess(
        leading=True, last_beat=last_beat, leading_since=leading_since, now=now, stall_seconds=60
    )
    assert report.healthy is healthy
    assert report.role == "leader"


def test_a_standby_is_healthy_however_quiet() -> None:
    report = assess(leading=False, last_beat=None, leading_since=None, now=1e9, stall_seconds=60)
    assert report.healthy and report.role == "standby"


def test_stall_detection_can_be_off() -> None:
    report = assess(
        leading=True,
        last_beat=0.0,
        leading_since=0.0,
        now=1e9,
        stall_seconds=60,
        detect_stalls=False,
    )
    assert report.healthy


def test_the_heartbeat_records_the_clock() -> None:
    now = [5.0]
    heartbeat = WatchHeartbeat(clock=lambda: now[0])
    assert heartbeat.last_beat is None
    heartbeat.beat()
    now[0] = 7.0
    assert heartbeat.last_beat == 5.0


def test_health_address_from_a_liveness_url() -> None:
    assert HealthAddress.from_url("http://0.0.0.0:8080/healthz") == HealthAddress(
        "0.0.0.0", 8080, "/healthz"
    )
    with pytest.raises(ValueError, match="HOST:PORT"):
        HealthAddress.from_url("https://example:8080/healthz")


async def _get(port: int, request: str) -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body) if body else {}


@pytest.mark.component
def test_the_endpoint_serves_the_verdict() -> None:
    now = [1000.0]
    heartbeat = WatchHeartbeat(clock=lambda: now[0])
    health = OperatorHealth(heartbeat, stall_seconds=60, clock=lambda: now[0])

    async def scenario() -> None:
        server = await serve_health(health, HealthAddress("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        probe = "GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.30\r\n\r\n"
        try:
            status, report = await _get(port, probe)
            assert (status, report["role"], report["healthy"]) == (200, "standby", True)

            health.start_leading()
            now[0] += 30
            heartbeat.beat()
            status, report = await _get(port, probe)
            assert (status, report["role"], report["secondsSinceWatchEvent"]) == (200, "leader", 0)

            now[0] += 61
            status, report = await _get(port, probe)
            assert status == 503 and not report["healthy"]
            assert report["reason"] == "no watch event for 61s (limit 60s)"

            assert (await _get(port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 404
            assert (await _get(port, "POST /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 405
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


@pytest.mark.component
def test_the_endpoint_says_ready_once_the_leader_serves() -> None:
    health = OperatorHealth(WatchHeartbeat(), stall_seconds=60)
    probe = "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"

    async def scenario() -> None:
        server = await serve_health(health, HealthAddress("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        try:
            # A standby is live (`/healthz`), not ready.
            assert await _get(port, probe) == (
                503,
                {"ready": False, "reason": "waiting for the Lease"},
            )
            health.start_leading()
            status, said = await _get(port, probe)
            assert (status, said["ready"]) == (503, False)
            assert said["reason"].startswith("starting")
            health.start_serving()
            assert await _get(port, probe) == (200, {"ready": True, "reason": "serving"})
            assert (await _get(port, "POST /readyz HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 405
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())
