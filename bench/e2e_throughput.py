"""End-to-end throughput of the dev stack against the floor of spawning the runner directly.

Prints, from one run on one machine (absolute times drift here, ratios hold):
- runs/s for N no-op runs triggered over HTTP through `podtask dev`
  (API → TaskRun → operator → pod → runner → API → operator);
- runs/s for the same N runner processes spawned directly (`--local`, no API,
  no cluster) at the same concurrency: the noop task's queue limit;
- their ratio;
- Kubernetes API write requests per completed run, counted by the embedded cluster.

Usage: python bench/e2e_throughput.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml

from podtask._cli.devprocess import DevProcess

sys.path.insert(0, str(Path(__file__).resolve().parent / "tasks"))
from noop import CONCURRENCY

HERE = Path(__file__).resolve().parent
NOOP = HERE / "tasks" / "noop.py"
WRITE_VERBS = ("create", "update", "patch", "delete")


def cluster_url(kubeconfig: str) -> str:
    config = yaml.safe_load(Path(kubeconfig).read_text())
    return str(config["clusters"][0]["cluster"]["server"])


def write_requests(url: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0
    for verb in WRITE_VERBS:
        for match in re.finditer(rf'verb="{verb}"[^}}]*}} (\d+)', text):
            total += int(match.group(1))
    return total


async def through_the_stack(dev: DevProcess, runs: int) -> float:
    headers = {"Authorization": f"Bearer {dev.api_key}"}
    async with httpx.AsyncClient(base_url=dev.api_url, headers=headers, timeout=60) as api:
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(
                api.post("/api/v1/tasks/noop/trigger", json={"payload": {"i": i}})
                for i in range(runs)
            )
        )
        ids = [r.json()["id"] for r in responses]
        pending = set(ids)
        while pending:
            results = await asyncio.gather(*(api.get(f"/api/v1/runs/{i}") for i in pending))
            for run in (r.json() for r in results):
                if run["status"] in ("Completed", "Failed", "Crashed", "SystemFailure"):
                    if run["status"] != "Completed":
                        raise SystemExit(f"run {run['id']} ended {run['status']}: {run['error']}")
                    pending.discard(run["id"])
            await asyncio.sleep(0.05)
        return time.perf_counter() - started


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


def spawned_directly(runs: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        codes = list(pool.map(_run_directly, range(runs)))
    if any(codes):
        raise SystemExit(f"direct runner processes failed: {codes}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, DevProcess([str(NOOP)], Path(tmp) / "state") as dev:
        kube = cluster_url(dev.kubeconfig)
        asyncio.run(through_the_stack(dev, 3))  # warm caches and imports once
        direct_warm = spawned_directly(3)
        writes_before = write_requests(kube)
        stack_seconds = asyncio.run(through_the_stack(dev, args.runs))
        writes = write_requests(kube) - writes_before
        direct_seconds = spawned_directly(args.runs)
    del direct_warm
    stack_rate = args.runs / stack_seconds
    direct_rate = args.runs / direct_seconds
    print(f"runs: {args.runs} no-op runs, triggered at once, {CONCURRENCY} at a time")
    print(f"dev stack end to end:     {stack_rate:8.2f} runs/s ({stack_seconds:.2f} s)")
    print(f"runner spawned directly:  {direct_rate:8.2f} runs/s ({direct_seconds:.2f} s)")
    print(f"ratio stack/direct:       {stack_rate / direct_rate:8.3f}")
    print(f"Kubernetes API writes per completed run: {writes / args.runs:.2f}")


if __name__ == "__main__":
    main()
