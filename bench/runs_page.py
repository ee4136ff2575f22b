"""The dashboard's runs page over 10,000 runs: its first page (HTML, signed in) next to the
first page of `GET /api/v1/runs`, with `/healthz` as the floor (acceptance 3 of issue 14).

On one embedded cluster (its own process), 10,000 TaskRuns are created directly through
the cluster's API (no trigger, no operator: they stay Pending, as runs the operator has not
seen yet), named as the API names them (newest first). The API runs under uvicorn in its
own process; a browser's session is made by signing in with a key. Each of the three URLs
is then asked for in turn, one request at a time, and the medians (and p90) printed, with
the ratios to `/healthz`, and whether the first page of `/runs` is served in under 300 ms on
this machine.

Usage: python bench/runs_page.py [--runs 10000] [--requests 40]
"""

from __future__ import annotations

import argparse
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from api_throughput import (
    NAMESPACE,
    TASK,
    noop_cluster,
    percentile,
    processes,
    wait_ready,
)

from podtask_devcluster.ports import free_port

# The page must be served within this on this machine (the acceptance 3).
BUDGET_MS = 300.0
CREATORS = 16


def create_runs(kubeconfig: str, count: int) -> float:
    """`count` TaskRuns of the noop task, created `CREATORS` at a time; the seconds taken."""
    from podtask._contract.resources import TaskSpec
    from podtask_api.cluster import KubernetesCluster
    from podtask_api.run_names import random_run_name
    from podtask_api.task_runs import build_task_run
    from podtask_api.trigger_requests import TriggerRequest

    cluster = KubernetesCluster.connect(NAMESPACE, kubeconfig)
    task = TaskSpec.model_validate(cluster.get_task(TASK)["spec"])

    def create(i: int) -> None:
        request = TriggerRequest.model_validate(
            {"payload": {"i": i}, "options": {"tags": [f"batch-{i % 20}"], "isTest": i % 7 == 0}}
        )
        cluster.create_run(build_task_run(task, request, random_run_name()))

    started = time.perf_counter()
    with ThreadPoolExecutor(CREATORS) as pool:
        for done, _ in enumerate(pool.map(create, range(count)), 1):
            if done % 2000 == 0:
                print(f"  {done} runs created", flush=True)
    return time.perf_counter() - started


def signed_in(api_url: str, key: str) -> httpx.Client:
    """A client holding a dashboard session made with `key`, as a browser would."""
    browser = httpx.Client(base_url=api_url, timeout=60, follow_redirects=False)
    form = browser.get("/sign-in")
    token = re.search(r'name="form_token" value="([^"]+)"', form.text)
    if token is None:
        raise SystemExit(f"no sign-in form: HTTP {form.status_code}")
    answer = browser.post("/sign-in", data={"key": key, "form_token": token[1], "next": ""})
    if answer.status_code != 303:
        raise SystemExit(f"sign-in failed: HTTP {answer.status_code}: {answer.text[:300]}")
    return browser


def measure(api_url: str, key: str, requests: int) -> dict[str, list[float]]:
    """Each URL `requests` times, in turn (so that drift weighs on all alike); latencies."""
    browser = signed_in(api_url, key)
    api = httpx.Client(base_url=api_url, timeout=60, headers={"Authorization": f"Bearer {key}"})
    asks: dict[str, Callable[[], httpx.Response]] = {
        "/runs (HTML page)": lambda: browser.get("/runs"),
        "GET /api/v1/runs": lambda: api.get("/api/v1/runs"),
        "/healthz": lambda: api.get("/healthz"),
    }
    latencies: dict[str, list[float]] = {name: [] for name in asks}
    try:
        for name, ask in asks.items():  # warm up: the first requests compile and connect
            for _ in range(3):
                check(name, ask())
        for _ in range(requests):
            for name, ask in asks.items():
                started = time.perf_counter()
                response = ask()
                latencies[name].append((time.perf_counter() - started) * 1000)
                check(name, response)
    finally:
        browser.close()
        api.close()
    return latencies


def check(name: str, response: httpx.Response) -> None:
    if response.status_code != 200:
        raise SystemExit(f"{name}: HTTP {response.status_code}: {response.text[:300]}")
    if name.startswith("/runs") and response.text.count("<tr data-run-id=") != 25:
        raise SystemExit(f"{name}: the page does not show 25 runs")


def report(latencies: dict[str, list[float]], runs: int) -> bool:
    floor = statistics.median(latencies["/healthz"])
    print(f"\nfirst page over {runs} runs, {len(latencies['/healthz'])} requests each:")
    for name, values in latencies.items():
        median = statistics.median(values)
        print(
            f"{name:<20} median {median:7.1f} ms   p90 {percentile(values, 0.9):7.1f} ms   "
            f"{median / floor:6.1f}x /healthz"
        )
    page = statistics.median(latencies["/runs (HTML page)"])
    listed = statistics.median(latencies["GET /api/v1/runs"])
    print(f"ratio (page / API list): {page / listed:.2f}x")
    within = page < BUDGET_MS
    verdict = "under" if within else "NOT under"
    print(f"the first page of /runs: median {page:.1f} ms, {verdict} {BUDGET_MS:.0f} ms")
    return within


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    from podtask._control.api_keys import api_key_digest

    api_key = "pt_bench_" + secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="podtask-bench-") as tmp, processes() as started:
        env = noop_cluster(tmp, started)
        kubeconfig = str(Path(tmp) / "kubeconfig")
        print(f"creating {args.runs} TaskRuns in the embedded cluster …", flush=True)
        seconds = create_runs(kubeconfig, args.runs)
        print(f"  done in {seconds:.1f} s ({args.runs / seconds:.0f} runs/s)")

        api_port = free_port()
        api = subprocess.Popen(
            [
                *(sys.executable, "-m", "podtask_api", "--host", "127.0.0.1"),
                *("--port", str(api_port), "--log-level", "warning"),
            ],
            env={
                **env,
                "KUBECONFIG": kubeconfig,
                "PODTASK_NAMESPACE": NAMESPACE,
                "PODTASK_API_KEY_HASHES": api_key_digest(api_key),
                "PODTASK_RUNNER_TOKEN_SECRET": secrets.token_urlsafe(16),
            },
        )
        started.append(api)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_ready(f"{api_url}/healthz", api, "API")
        report(measure(api_url, api_key, args.requests), args.runs)
    return 0  # a measurement, not a test: the verdict is printed


if __name__ == "__main__":
    sys.exit(main())
