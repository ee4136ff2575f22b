"""Acceptance 3 of issue 15: after a few real runs, the API's `/metrics` and the operator's show
the metrics with the values those runs make, as Prometheus' own parser reads them; a standby
operator serves its own (not leading, nothing counted); `podtask dev` prints the operator's
address. On both clusters."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from podtask._cli.dev import free_port
from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import TASK_MODULES, Stack, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
OK, FAILS, QUEUE = "metered-ok", "metered-fails", "metered"


def scrape(url: str, key: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(url, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Metered:
    """A composed stack whose operator serves its health port, and a standby beside it."""

    def __init__(self, stack: ComposedStack, port: int, standby_port: int) -> None:
        self.stack = stack
        self.operator_url = f"http://127.0.0.1:{port}/metrics"
        self.standby_url = f"http://127.0.0.1:{standby_port}/metrics"
        self.standby: subprocess.Popen[bytes] | None = None

    def api(self) -> Samples:
        return scrape(f"{self.stack.api_url}/metrics", self.stack.api_key)

    def operator(self) -> Samples:
        return scrape(self.operator_url)


def _lease_env() -> dict[str, str]:
    # The chart's Lease timings: on a loaded machine the composed stack's short Lease (4 s)
    # may be lost and the operator restarted, its counters from zero again.
    return {"PODTASK_LEASE_DURATION_SECONDS": "15", "PODTASK_LEASE_RENEW_SECONDS": "5"}


def _health_env(port: int) -> dict[str, str]:
    return {"PODTASK_HEALTH_HOST": "127.0.0.1", "PODTASK_HEALTH_PORT": str(port)}


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, cluster_kind: str) -> Iterator[Metered]:
    port, standby_port = free_port(), free_port()
    state = tmp_path_factory.mktemp("metrics")
    stack = ComposedStack(
        state,
        [str(TASK_MODULES / "metered.py")],
        operator_env={**_health_env(port), **_lease_env()},
        cluster_kind=cluster_kind,
    )
    stack.start()
    metered = Metered(stack, port, standby_port)
    try:
        # A second operator, started once the first leads: it stands by for the Lease.
        wait_until(lambda: _answers(metered.operator_url), timeout=120)
        base = {k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")}
        with (state / "standby.log").open("ab") as log:
            metered.standby = subprocess.Popen(
                [sys.executable, "-m", "podtask_operator"],
                env={
                    **base,
                    "KUBECONFIG": str(stack.cluster.kubeconfig_path),
                    "PODTASK_NAMESPACE": "default",
                    "PODTASK_RUNNER_TOKEN_SECRET": stack.runner_secret,
                    "PODTASK_API_URL": stack.api_url,
                    **_health_env(standby_port),
                    **_lease_env(),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        yield metered
    finally:
        if metered.standby is not None:
            metered.standby.terminate()
            try:
                metered.standby.wait(timeout=20)
            except subprocess.TimeoutExpired:
                metered.standby.kill()
        stack.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_few_runs_show_in_both_components_metrics(metered: Metered) -> None:
    stack = metered.stack
    api_before = metered.api()
    ok = [stack.trigger(OK, {"i": i}) for i in range(3)]
    fails = stack.trigger(FAILS, {})
    runs = stack.wait_all([*ok, fails], timeout=300)
    assert [runs[r]["status"]["phase"] for r in ok] == ["Completed"] * 3
    assert runs[fails]["status"]["phase"] == "Failed"

    api = metered.api()

    def api_delta(name: str, **labels: str) -> float:
        return value(api, name, **labels) - value(api_before, name, **labels)

    assert api_delta("podtask_runs_triggered_total", task=OK) == 3
    assert api_delta("podtask_runs_triggered_total", task=FAILS) == 1
    trigger = {"route": "/api/v1/tasks/{task_id}/trigger", "method": "POST", "status": "201"}
    assert api_delta("podtask_api_request_duration_seconds_count", **trigger) == 4
    assert api_delta("podtask_api_request_duration_seconds_sum", **trigger) > 0
    # The runner's callbacks come through the API too, each under its route's template.
    assert any(
        name == "podtask_api_request_duration_seconds_count"
        and dict(labels)["route"].startswith("/api/v1/runner/")
        for name, labels in api
    )
    kube = "podtask_kube_requests_total"
    assert api_delta(kube, verb="create", resource="taskruns", code="201") >= 4
    assert value(api, "process_resident_memory_bytes") > 0

    # The operator counts each run as it writes its end: wait for the last write to land.
    def operator_counted() -> Samples | None:
        found = metered.operator()
        done = value(found, "podtask_runs_finished_total", task=FAILS, status="Failed")
        return found if done >= 1 else None

    operator: Samples = wait_until(operator_counted, timeout=60)
    assert stack.operator_restarts == [], "the operator restarted: its counters began again"
    assert value(operator, "podtask_operator_leader") == 1
    assert value(operator, "podtask_runs_finished_total", task=OK, status="Completed") == 3
    assert value(operator, "podtask_runs_finished_total", task=FAILS, status="Failed") == 1
    assert value(operator, "podtask_attempts_total", task=OK, outcome="Succeeded") == 3
    assert value(operator, "podtask_attempts_total", task=FAILS, outcome="Failed") == 2
    assert value(operator, "podtask_admissions_total", queue=QUEUE) == 5
    for histogram, task, count in (
        ("podtask_run_duration_seconds", OK, 3),
        ("podtask_run_duration_seconds", FAILS, 1),
        ("podtask_run_queue_wait_seconds", OK, 3),
        ("podtask_run_queue_wait_seconds", FAILS, 1),
    ):
        assert value(operator, f"{histogram}_count", task=task) == count, (histogram, task)
        assert value(operator, f"{histogram}_bucket", task=task, le="+Inf") == count
    # Once per pod, as its events showed it started (its status says when).
    assert value(operator, "podtask_pod_start_latency_seconds_count", task=OK) == 3
    assert value(operator, "podtask_pod_start_latency_seconds_count", task=FAILS) == 2
    # The queue as the scheduler holds it now: nothing running or waiting, its declared limit.
    assert value(operator, "podtask_queue_limit", queue=QUEUE) == 2
    assert value(operator, "podtask_queue_running", queue=QUEUE) == 0
    assert value(operator, "podtask_queue_waiting", queue=QUEUE) == 0
    assert value(operator, kube, verb="create", resource="pods", code="201") >= 5
    # A start per attempt (5), the failing run's retry and end (2): the successes are completed
    # by the API, in the write that records their report (counted there, below).
    assert value(operator, kube, verb="patch", resource="taskruns/status", code="200") >= 7
    assert api_delta(kube, verb="patch", resource="taskruns/status", code="200") >= 5
    assert value(operator, kube, verb="list", resource="taskruns", code="200") >= 1


def test_a_standby_serves_its_metrics_and_counts_nothing(metered: Metered) -> None:
    wait_until(lambda: _answers(metered.standby_url), timeout=120)
    found = scrape(metered.standby_url)
    assert value(found, "podtask_operator_leader") == 0
    assert not [name for name, _ in found if name == "podtask_runs_finished_total"]
    assert value(metered.operator(), "podtask_operator_leader") == 1


def test_podtask_dev_prints_where_the_operator_serves_its_metrics(stack: Stack) -> None:
    url = stack.dev.operator_metrics_url
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics"), stack.dev.output
    wait_until(lambda: _answers(url), timeout=60)
    assert value(scrape(url), "podtask_operator_leader") == 1
    api = scrape(f"{stack.dev.api_url}/metrics", stack.dev.api_key)
    assert any(name.startswith("podtask_api_request_duration_seconds") for name, _ in api)
