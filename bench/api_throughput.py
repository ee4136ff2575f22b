"""The trigger API's own overhead: the real API next to a bare endpoint doing the same create.

On one embedded cluster (its own process), two servers run side by side, each under uvicorn
in its own process with the same settings:
- the real API (`python -m podtask_api`): key check, validation, the Task read, the
  TaskRun built and created;
- a bare FastAPI app (`bare_app` below) whose one endpoint creates the same TaskRun with the
  same client (`KubernetesCluster.create_run`), in a worker thread too, and nothing else.

It prints, from one run (absolute times drift on these machines; ratios hold better):
- requests/s and latency p50/p99 of N triggers at a fixed concurrency (httpx, async) on each,
  the two taking turns (`interleaved`), and the ratios;
- one batch of 1,000 items through `POST /api/v1/tasks/batch`, against 1,000 bare creates
  at the same concurrency.

No operator runs: the runs are created and stay Pending.

The throughput ratio is `p4` of bench/results.json (`bench/results.py`), with both sides'
requests/s and latencies. `--profile FILE` samples the API with py-spy meanwhile (the `bench`
extra) and prints where its CPU went; `--quick` runs tiny sizes (a smoke test).

Usage: python bench/api_throughput.py [--requests 1000] [--concurrency 16] [--batch 1000]
       [--quick] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from podtask_devcluster.ports import free_port

HERE = Path(__file__).resolve().parent
NOOP = HERE / "tasks" / "noop.py"
TASK = "noop"
NAMESPACE = "default"
WARMUP_REQUESTS = 50
# Each turn of one side is this many requests per worker: long enough that the start and end
# of a turn (workers not all busy) weigh little, short enough to alternate often.
TURN_ROUNDS = 5


# -- the bare endpoint --------------------------------------------------------------------------


def bare_app() -> Any:
    """The floor: read the Task once, then per request create a TaskRun from it, unchecked."""
    from fastapi import FastAPI

    from podtask._contract.resources import TaskRunSpec, TaskSpec
    from podtask._contract.wire import API_VERSION
    from podtask_api.cluster import KubernetesCluster

    cluster = KubernetesCluster.connect(NAMESPACE, os.environ["KUBECONFIG"])
    task = TaskSpec.model_validate(cluster.get_task(TASK)["spec"])
    spec = TaskRunSpec(
        task_id=task.task_id,
        version=task.version,
        image=task.image,
        module=task.module,
        machine=task.machine,
        retry=task.retry,
        queue=task.queue,
    ).to_wire()
    app = FastAPI()

    @app.post("/bare/trigger", status_code=201)
    def trigger(body: dict[str, Any]) -> dict[str, str]:
        # A plain `def`: FastAPI runs it in a worker thread, as the API runs its cluster calls.
        name = "bare-" + secrets.token_hex(8)
        cluster.create_run(
            {
                "apiVersion": API_VERSION,
                "kind": "TaskRun",
                "metadata": {"name": name},
                "spec": {**spec, "payload": body.get("payload")},
            }
        )
        return {"id": name}

    return app


# -- the processes ------------------------------------------------------------------------------


def wait_ready(url: str, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 300  # generous: the machines running this are busy
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the {name} exited during start-up")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the {name} did not become ready")


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def noop_cluster(tmp: str, started: list[subprocess.Popen[bytes]]) -> dict[str, str]:
    """An embedded cluster with its state in `tmp` (its kubeconfig there) and the noop task
    registered; the environment to start the other processes with (no PODTASK_ settings)."""
    from podtask._authoring.manifest import load_manifest
    from podtask._cli.dev import register

    env = {k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")}
    cluster_port = free_port()
    cluster = subprocess.Popen(
        [
            *(sys.executable, "-m", "podtask_devcluster", "--state-dir", tmp),
            *("--port", str(cluster_port), "--workdir", tmp),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    started.append(cluster)
    cluster_url = f"http://127.0.0.1:{cluster_port}"
    wait_ready(f"{cluster_url}/readyz", cluster, "embedded cluster")
    register(cluster_url, load_manifest([str(NOOP)]), NAMESPACE)
    return env


# -- the profile -------------------------------------------------------------------------------


@contextmanager
def sampled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy samples process `pid` (every thread, CPU only) into `out` while in the block."""
    if out is None:
        yield
        return
    if not Path(sys.executable).with_name("py-spy").exists():
        raise SystemExit("--profile needs py-spy: pip install -e '.[bench]'")
    spy = subprocess.Popen(
        [
            *(str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid)),
            *("--format", "raw", "--rate", "200", "--nonblocking", "--function"),
            *("--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


# A sample whose innermost frame is one of these is a thread waiting (for a request, for the
# cluster's answer, for work), not spending CPU: py-spy cannot always tell in a container.
WAITING = (
    "wait (threading.py",
    "get (queue.py",
    "select (selectors.py",
    "readinto (socket.py",
    "recv_into (socket.py",
    "_worker (concurrent",
)


def print_profile(collapsed: Path, top: int = 30) -> None:
    """Where the sampled process spent its CPU: each function's inclusive share of the
    busy samples, largest first (the frames every request passes through, above the route's
    own, are left out: they are 100% of everything)."""
    inclusive: dict[str, int] = {}
    busy = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(waiting in frames[-1] for waiting in WAITING):
            continue
        samples = int(count)
        busy += samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    print(f"\nwhere the API's CPU went ({busy} busy samples; share of them, inclusive):")
    interesting = ("podtask", "kubernetes", "pydantic", "json", "fastapi/routing", "uvicorn/prot")
    shown = 0
    for frame, samples in sorted(inclusive.items(), key=lambda kv: -kv[1]):
        if any(part in frame for part in interesting) and "__main__" not in frame:
            print(f"{100 * samples / busy:5.1f}%  {frame}")
            shown += 1
            if shown == top:
                break


# -- the load -----------------------------------------------------------------------------------


async def load(
    send: Callable[[int], Awaitable[httpx.Response]], requests: int, concurrency: int
) -> tuple[float, list[float]]:
    """`requests` calls of `send`, `concurrency` at a time: wall seconds and each latency."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            response = await send(i)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(name: str, wall: float, latencies: list[float]) -> dict[str, float]:
    result = {
        "rps": len(latencies) / wall,
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "mean": statistics.fmean(latencies) * 1000,
    }
    print(
        f"{name:<12} {result['rps']:8.0f} req/s   p50 {result['p50']:7.1f} ms   "
        f"p99 {result['p99']:7.1f} ms"
    )
    return result


def interleaved(requests: int, chunk: int) -> list[tuple[str, int]]:
    """The order the two sides take turns in: rounds of A B B A, `chunk` requests a turn, in
    all `requests` per side. Load from elsewhere on the machine comes and goes within seconds;
    short alternating turns spread it over both sides alike."""
    turns: list[tuple[str, int]] = []
    left = {"api": requests, "bare": requests}
    while left["api"] > 0 or left["bare"] > 0:
        for side in ("api", "bare", "bare", "api"):
            take = min(chunk, left[side])
            if take:
                turns.append((side, take))
                left[side] -= take
    return turns


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def measure(
    api_url: str, bare_url: str, api_key: str, args: argparse.Namespace, pids: dict[str, int]
) -> dict[str, dict[str, float]]:
    """Both sides measured, turn and turn about; each side's figures (`summary`), with the
    CPU its server and the cluster spent per trigger (`pids`: "api", "bare", "cluster")."""
    # Idle connections are dropped before uvicorn drops them (its keep-alive is 5 s): a turn of
    # the other side may last longer, and a request on a closed connection fails.
    limits = httpx.Limits(max_connections=args.concurrency * 2, keepalive_expiry=2)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with (
        httpx.AsyncClient(base_url=api_url, headers=headers, timeout=120, limits=limits) as api,
        httpx.AsyncClient(base_url=bare_url, timeout=120, limits=limits) as bare,
    ):

        def via_api(i: int) -> Awaitable[httpx.Response]:
            return api.post(f"/api/v1/tasks/{TASK}/trigger", json={"payload": {"i": i}})

        def via_bare(i: int) -> Awaitable[httpx.Response]:
            return bare.post("/bare/trigger", json={"payload": {"i": i}})

        senders = {"api": via_api, "bare": via_bare}
        for send in senders.values():
            await load(send, args.warmup, args.concurrency)

        timings: dict[str, tuple[float, list[float]]] = {"api": (0.0, []), "bare": (0.0, [])}
        # CPU seconds of each side's server, and of the cluster during each side's turns.
        cpu = {"api": [0.0, 0.0], "bare": [0.0, 0.0]}
        for side, count in interleaved(args.requests, args.concurrency * TURN_ROUNDS):
            before = cpu_seconds(pids[side]), cpu_seconds(pids["cluster"])
            wall, latencies = await load(senders[side], count, args.concurrency)
            cpu[side][0] += cpu_seconds(pids[side]) - before[0]
            cpu[side][1] += cpu_seconds(pids["cluster"]) - before[1]
            timings[side] = (timings[side][0] + wall, timings[side][1] + latencies)
        print(f"\n{args.requests} triggers each, {args.concurrency} at a time:")
        real = summary("podtask API", *timings["api"])
        floor = summary("bare create", *timings["bare"])
        for side, figures in (("api", real), ("bare", floor)):
            figures["server_cpu_ms"] = 1000 * cpu[side][0] / args.requests
            figures["cluster_cpu_ms"] = 1000 * cpu[side][1] / args.requests
        # The throughput ratio a CPU-bound machine would show: the CPU a trigger costs on the
        # bare side (its server and the cluster) over what it costs through the API. Where other
        # work starves both sides alike, requests/s say little; this holds.
        real["cpu_ratio"] = (floor["server_cpu_ms"] + floor["cluster_cpu_ms"]) / (
            real["server_cpu_ms"] + real["cluster_cpu_ms"]
        )
        print(
            "CPU per trigger: "
            f"API {real['server_cpu_ms']:.2f} ms + cluster {real['cluster_cpu_ms']:.2f} ms; "
            f"bare {floor['server_cpu_ms']:.2f} ms + cluster {floor['cluster_cpu_ms']:.2f} ms; "
            f"ratio (bare / API) {real['cpu_ratio']:.2f}x"
        )
        print(
            f"ratio (API / bare): throughput {real['rps'] / floor['rps']:.2f}x, "
            f"p50 latency {real['p50'] / floor['p50']:.2f}x, "
            f"p99 latency {real['p99'] / floor['p99']:.2f}x"
        )

        items = [{"task": TASK, "payload": {"i": i}} for i in range(args.batch)]
        started = time.perf_counter()
        response = await api.post("/api/v1/tasks/batch", json={"items": items})
        batch_seconds = time.perf_counter() - started
        if response.status_code != 201 or len(response.json()["runs"]) != args.batch:
            raise RuntimeError(f"batch: HTTP {response.status_code}: {response.text[:300]}")
        bare_seconds, _ = await load(via_bare, args.batch, args.concurrency)
        print(f"\none batch of {args.batch} items:")
        print(f"podtask API  {batch_seconds:8.2f} s    ({args.batch / batch_seconds:.0f} runs/s)")
        print(
            f"bare create  {bare_seconds:8.2f} s    ({args.batch / bare_seconds:.0f} runs/s, "
            f"{args.batch} requests, {args.concurrency} at a time)"
        )
        print(f"ratio (batch / bare creates): time {batch_seconds / bare_seconds:.2f}x")
        return {"api": real, "bare": floor}


def record_p4(figures: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    from results import Goal, record  # bench/results.py: this script's folder is on the path

    real, floor = figures["api"], figures["bare"]
    record(
        "p4",
        f"trigger requests/s through the API / a bare FastAPI create, concurrency "
        f"{args.concurrency}",
        real["rps"] / floor["rps"],
        Goal(">=", 0.85),
        {
            "requests_per_side": args.requests,
            "concurrency": args.concurrency,
            "api_rps": real["rps"],
            "bare_rps": floor["rps"],
            "api_p50_ms": real["p50"],
            "api_p99_ms": real["p99"],
            "bare_p50_ms": floor["p50"],
            "bare_p99_ms": floor["p99"],
            "api_cpu_ms_per_trigger": real["server_cpu_ms"],
            "bare_cpu_ms_per_trigger": floor["server_cpu_ms"],
            "cluster_cpu_ms_per_api_trigger": real["cluster_cpu_ms"],
            "cluster_cpu_ms_per_bare_trigger": floor["cluster_cpu_ms"],
        },
        cpu_ratio=real["cpu_ratio"],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="triggers per side")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=WARMUP_REQUESTS)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, for a smoke run: the figures mean nothing",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="sample the API process with py-spy while it is measured (collapsed stacks to "
        "FILE) and print where its CPU time went",
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.requests, args.concurrency, args.batch, args.warmup = 8, 2, 4, 2
    if args.serve_bare:
        import uvicorn

        uvicorn.run(bare_app(), host="127.0.0.1", port=args.serve_bare, log_level="warning")
        return 0

    from podtask._control.api_keys import api_key_digest

    api_key = "pt_bench_" + secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="podtask-bench-") as tmp, processes() as started:
        env = {**noop_cluster(tmp, started), "KUBECONFIG": str(Path(tmp) / "kubeconfig")}
        api_port, bare_port = free_port(), free_port()
        api_env = {
            **env,
            "PODTASK_NAMESPACE": NAMESPACE,
            "PODTASK_API_KEY_HASHES": api_key_digest(api_key),
            "PODTASK_RUNNER_TOKEN_SECRET": secrets.token_urlsafe(16),
        }
        api = subprocess.Popen(
            [
                *(sys.executable, "-m", "podtask_api", "--host", "127.0.0.1"),
                *("--port", str(api_port), "--log-level", "warning"),
            ],
            env=api_env,
        )
        started.append(api)
        bare = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare", str(bare_port)],
            env=env,
        )
        started.append(bare)
        api_url, bare_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
        wait_ready(f"{api_url}/healthz", api, "API")
        wait_ready(f"{bare_url}/docs", bare, "bare app")
        with sampled(api.pid, args.profile):
            pids = {"api": api.pid, "bare": bare.pid, "cluster": started[0].pid}
            figures = asyncio.run(measure(api_url, bare_url, api_key, args, pids))
    record_p4(figures, args)
    if args.profile:
        print_profile(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
