"""End-to-end throughput of the dev stack against the floor of spawning the runner directly,
where a run's time goes, and the Kubernetes API writes a run costs.

Prints, from one run on one machine (absolute times drift here, ratios hold):
- the writes of runs that do not wait (triggered in waves no larger than the queue's limit),
  by resource, verb and sender (podtask's components or the cluster's node), and P3: podtask's
  writes to TaskRuns and Pods per completed run (Events apart);
- the latency breakdown of those runs, p50 and p99 per stage (`run_stages.MOMENTS`);
- runs/s for N no-op runs triggered at once over HTTP through `podtask dev`
  (API → TaskRun → operator → pod → runner → API → operator), and for the same N runner
  processes spawned directly (`--local`, no API, no cluster) at the same concurrency (the noop
  task's queue limit); P1 is their ratio.

Usage: python bench/e2e_throughput.py [--runs N] [--waves N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import yaml

from podtask._cli.devprocess import DevProcess
from podtask._contract.wire import GROUP, LABEL_RUN, TASK_RUNS, VERSION

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "tasks"))
from noop import CONCURRENCY  # noqa: E402
from results import Goal, record  # noqa: E402
from run_stages import (  # noqa: E402
    request_counts,
    run_and_pod_writes,
    run_moments,
    stage_table,
    stages,
    writes_between,
    writes_table,
)
from stack_cpu import cpu_between, cpu_by_part  # noqa: E402

NOOP = HERE / "tasks" / "noop.py"
NAMESPACE = "default"
FINAL = ("Completed", "Failed", "Crashed", "SystemFailure", "Canceled", "TimedOut", "Expired")


def cluster_url(kubeconfig: str) -> str:
    config = yaml.safe_load(Path(kubeconfig).read_text())
    return str(config["clusters"][0]["cluster"]["server"])


class Sightings:
    """When this process first saw each TaskRun added, each completed, and each pod added:
    two watches, on threads of their own."""

    def __init__(self, kubeconfig: str) -> None:
        self._api = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
        self.stored: dict[str, float] = {}
        self.completed: dict[str, float] = {}
        self.pod_created: dict[str, float] = {}
        self._watches: list[kubernetes.watch.Watch] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Sightings:
        custom: Any = kubernetes.client.CustomObjectsApi(self._api)
        core: Any = kubernetes.client.CoreV1Api(self._api)
        runs = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, TASK_RUNS)
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=LABEL_RUN)
        self._follow(
            self._run_seen,
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            NAMESPACE,
            TASK_RUNS,
            resource_version=runs["metadata"]["resourceVersion"],
        )
        self._follow(
            self._pod_seen,
            core.list_namespaced_pod,
            NAMESPACE,
            label_selector=LABEL_RUN,
            resource_version=pods.metadata.resource_version,
        )
        return self

    def _follow(self, seen: Callable[[str, Any], None], lister: Any, *args: Any, **kw: Any) -> None:
        watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]

        def follow() -> None:
            try:
                for event in watch.stream(  # type: ignore[no-untyped-call]
                    lister, *args, timeout_seconds=3600, **kw
                ):
                    seen(event["type"], event["object"])
            except Exception:  # the cluster stopped under the watch: the benchmark is over
                return

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        self._watches.append(watch)
        self._threads.append(thread)

    def _run_seen(self, kind: str, run: dict[str, Any]) -> None:
        now = time.time()
        name = run["metadata"]["name"]
        self.stored.setdefault(name, now)
        if (run.get("status") or {}).get("phase") in FINAL:
            self.completed.setdefault(name, now)

    def _pod_seen(self, kind: str, pod: Any) -> None:
        self.pod_created.setdefault(pod.metadata.labels[LABEL_RUN], time.time())

    def __exit__(self, *_: object) -> None:
        for watch in self._watches:
            watch.stop()  # type: ignore[no-untyped-call]

    def taskrun(self, name: str) -> dict[str, Any]:
        custom: Any = kubernetes.client.CustomObjectsApi(self._api)
        found: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, TASK_RUNS, name
        )
        return found


async def through_the_stack(
    dev: DevProcess, runs: int, first: int = 0
) -> tuple[float, dict[str, Any]]:
    """Trigger `runs` no-op runs at once and wait for each to complete: the seconds it took,
    and for each run id its trigger time (wall clock) and its output."""
    headers = {"Authorization": f"Bearer {dev.api_key}"}
    triggered: dict[str, float] = {}
    outputs: dict[str, Any] = {}

    async with httpx.AsyncClient(base_url=dev.api_url, headers=headers, timeout=60) as api:

        async def trigger(i: int) -> None:
            sent = time.time()
            response = await api.post("/api/v1/tasks/noop/trigger", json={"payload": {"i": i}})
            response.raise_for_status()
            triggered[response.json()["id"]] = sent

        started = time.perf_counter()
        await asyncio.gather(*(trigger(first + i) for i in range(runs)))
        pending = set(triggered)
        while pending:
            try:
                results = await asyncio.gather(*(api.get(f"/api/v1/runs/{i}") for i in pending))
            except httpx.TransportError:  # a kept-alive connection closed under us: read again
                continue
            for run in (r.json() for r in results):
                if run["status"] in FINAL:
                    if run["status"] != "Completed":
                        raise SystemExit(f"run {run['id']} ended {run['status']}: {run['error']}")
                    outputs[run["id"]] = run["output"]
                    pending.discard(run["id"])
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
    return seconds, {name: (triggered[name], outputs[name]) for name in triggered}


def _run_directly(i: int) -> int:
    command = [
        sys.executable,
        "-m",
        "podtask_runner",
        "--local",
        str(NOOP),
        "noop",
        "--payload",
        f'{{"i": {i}}}',
    ]
    return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def time_of_children() -> float:
    """CPU seconds of this process's ended children (the runners spawned directly)."""
    times = os.times()
    return times.children_user + times.children_system


def spawned_directly(runs: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        codes = list(pool.map(_run_directly, range(runs)))
    if any(codes):
        raise SystemExit(f"direct runner processes failed: {codes}")
    return time.perf_counter() - started


def unwaited_runs(
    dev: DevProcess, sightings: Sightings, waves: int
) -> tuple[int, list[dict[str, float]]]:
    """Waves of runs, each no larger than the queue's limit and triggered once the last one
    completed, so that no run waits: how many, and each run's moments."""
    moments = []
    count = 0
    for wave in range(waves):
        _, runs = asyncio.run(through_the_stack(dev, CONCURRENCY, first=wave * CONCURRENCY))
        count += len(runs)
        deadline = time.monotonic() + 60
        while not set(runs) <= set(sightings.completed) and time.monotonic() < deadline:
            time.sleep(0.05)
        for name, (triggered, output) in runs.items():
            moments.append(
                run_moments(
                    sightings.taskrun(name),
                    output,
                    triggered=triggered,
                    stored=sightings.stored[name],
                    pod_created=sightings.pod_created[name],
                    completed=sightings.completed[name],
                )
            )
    return count, moments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs triggered at once (P1)")
    parser.add_argument(
        "--waves", type=int, default=3, help=f"waves of {CONCURRENCY} runs that do not wait (P3)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 8 runs, 1 wave")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.waves = CONCURRENCY, 1
    with (
        tempfile.TemporaryDirectory() as tmp,
        DevProcess([str(NOOP)], Path(tmp) / "state", start_timeout=600) as dev,
    ):
        metrics_url = f"{cluster_url(dev.kubeconfig)}/metrics"

        def counts() -> Any:
            return request_counts(httpx.get(metrics_url, timeout=10).text)

        asyncio.run(through_the_stack(dev, 3))  # warm caches and imports once
        spawned_directly(3)
        with Sightings(dev.kubeconfig) as sightings:
            before = counts()
            unwaited, moments = unwaited_runs(dev, sightings, args.waves)
            wave_writes = writes_between(before, counts())
        before, cpu_before = counts(), cpu_by_part(dev)
        stack_seconds, _ = asyncio.run(through_the_stack(dev, args.runs))
        burst_writes = writes_between(before, counts())
        burst_cpu = cpu_between(cpu_before, cpu_by_part(dev))
        direct_cpu = time_of_children()
        direct_seconds = spawned_directly(args.runs)
        direct_cpu = time_of_children() - direct_cpu

    print(f"writes of {unwaited} runs that did not wait, per run:")
    print(writes_table(wave_writes, unwaited))
    run_and_pod = run_and_pod_writes(wave_writes) / unwaited
    events = sum(n for key, n in wave_writes.items() if key.resource == "events" and not key.node)
    print(f"\nlatency breakdown of those {unwaited} runs:")
    print(stage_table(stages(moments)))
    print(f"\nwrites of {args.runs} runs triggered at once, {CONCURRENCY} at a time, per run:")
    print(writes_table(burst_writes, args.runs))
    stack_rate = args.runs / stack_seconds
    direct_rate = args.runs / direct_seconds
    print(f"\nruns: {args.runs} no-op runs, triggered at once, {CONCURRENCY} at a time")
    print(f"dev stack end to end:     {stack_rate:8.2f} runs/s ({stack_seconds:.2f} s)")
    print(f"runner spawned directly:  {direct_rate:8.2f} runs/s ({direct_seconds:.2f} s)")
    cpu_ms = {part: round(sec * 1000 / args.runs, 1) for part, sec in burst_cpu.items() if sec}
    print("CPU per run, dev stack: " + ", ".join(f"{p} {ms} ms" for p, ms in cpu_ms.items()))
    print(f"CPU per run, runner spawned directly: {direct_cpu * 1000 / args.runs:.1f} ms")
    record(
        "p1",
        "end-to-end runs/s through podtask dev ÷ the runner spawned directly",
        stack_rate / direct_rate,
        Goal(">=", 0.85),
        {
            "runs": args.runs,
            "concurrency": CONCURRENCY,
            "stack_seconds": stack_seconds,
            "direct_seconds": direct_seconds,
            "cpu_ms_per_run_by_part": cpu_ms,
            "direct_cpu_ms_per_run": direct_cpu * 1000 / args.runs,
            "stages_ms": {
                f"{s.start} → {s.end}": {"p50": s.p50_ms, "p99": s.p99_ms} for s in stages(moments)
            },
        },
    )
    record(
        "p3",
        "podtask's Kubernetes API writes to TaskRuns and Pods per completed run that did not wait",
        run_and_pod,
        Goal("<=", 4),
        {
            "runs": unwaited,
            "writes": {
                f"{k.resource} {k.verb} {'node' if k.node else 'podtask'}": n
                for k, n in wave_writes.items()
            },
        },
        events_per_run=events / unwaited,
    )


if __name__ == "__main__":
    main()
