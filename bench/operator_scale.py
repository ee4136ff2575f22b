"""The operator at the scale of a busy cluster, on the simulated node (issue 16's P7 and P5).

One `podtask dev --cluster real --runtime simulated` (the real control plane; the embedded
cluster when it cannot be built here, said so): pods start no process, each "runs" for
`--seconds` after fetching its attempt and reports success over HTTP with the attempt's token,
as the runner does (`podtask_devcluster.simulated_runtime`), so what is measured is the
operator, the API and the apiserver, not process start-up.

- p7: `--runs` runs triggered with the batch API (1,000 a request) on the task's queue, paused,
  then the queue resumed at its limit `--queue-limit`: the operator's loop is measured apart
  from the API's trigger rate (printed too). Sustained runs/s is the middle 80% of the
  completions (by each run's `status.finishedAt`) over the time they took; when `--budget`
  seconds end the wait first, the completions within it over that time (said so: `complete`
  false in `raw`). Beside it the Kubernetes API writes per completed run to TaskRuns and Pods
  (kube-apiserver's `apiserver_request_total` by resource and verb, from before the trigger;
  Events and the rest counted apart, in `raw`).
- p5: the operator's resident memory (psutil, every second) from the trigger on, the peak;
  then the queue is paused again and runs are triggered until `--rss-runs` TaskRuns exist (or
  `--rss-budget` seconds have gone), and the peak once the operator has queued them
  (`rss_mb_100k` when 100,000 were reached; the count reached is in `raw` either way).

Usage: python bench/operator_scale.py [--runs 10000] [--queue-limit 500] [--seconds 1]
       [--budget 120] [--rss-runs 100000] [--rss-budget 120] [--cluster real|embedded] [--quick]
"""

from __future__ import annotations

import argparse
import base64
import ssl
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families
from results import Goal, record, record_worst
from stack_cpu import KUBERNETES_PARTS, cores, cpu_by_part, runs_per_s_bound

from podtask._cli.devprocess import DevProcess

HERE = Path(__file__).resolve().parent
MODULE = HERE / "tasks" / "scale.py"
TASK = "bench-scale"
QUEUE = "bench-scale"
BATCH = 1000
# kube-apiserver labels requests with their HTTP verb (POST, PUT, ...); the embedded cluster
# with kube's verb names (create, update, ...): both as kube's.
WRITE_VERBS = {
    "post": "create",
    "create": "create",
    "put": "update",
    "update": "update",
    "patch": "patch",
    "apply": "patch",
    "delete": "delete",
    "deletecollection": "deletecollection",
}
RUN_RESOURCES = frozenset({"taskruns", "pods"})
FINAL = frozenset({"Completed", "Failed", "Crashed", "Canceled", "Expired", "TimedOut"})
GROUP_PATH = "/apis/podtask.dev/v1alpha1/namespaces/default"


def cluster_kind() -> str:
    """`real` when the real control plane's binaries are here or can be built, else
    `embedded` (said so)."""
    from podtask_devcluster.control_plane_build import (
        ControlPlaneBuildFailed,
        GoToolchainMissing,
        ensure_binaries,
    )

    try:
        ensure_binaries()
    except (GoToolchainMissing, ControlPlaneBuildFailed, OSError) as error:
        print(f"the real control plane is not available ({error}): on the embedded cluster")
        return "embedded"
    return "real"


def kube_client(kubeconfig: str, folder: Path) -> httpx.Client:
    """The admin's client from `podtask dev`'s kubeconfig (certificates inline on the real
    control plane; none on the embedded cluster)."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    user = (config.get("users") or [{}])[0].get("user") or {}
    options: dict[str, Any] = {}
    if "certificate-authority-data" in cluster:
        files = {}
        for key, name in (
            ("certificate-authority-data", "ca.crt"),
            ("client-certificate-data", "admin.crt"),
            ("client-key-data", "admin.key"),
        ):
            source = cluster if key.startswith("certificate-authority") else user
            files[key] = folder / name
            files[key].write_bytes(base64.b64decode(source[key]))
        context = ssl.create_default_context(cafile=str(files["certificate-authority-data"]))
        context.load_cert_chain(files["client-certificate-data"], files["client-key-data"])
        options["verify"] = context
    return httpx.Client(base_url=cluster["server"], timeout=120, **options)


def write_counts(kube: httpx.Client) -> Counter[tuple[str, str]]:
    """Write requests the apiserver has served so far, by `resource[/subresource]` and verb
    (the embedded cluster counts by verb only: resource `*`)."""
    counts: Counter[tuple[str, str]] = Counter()
    text = kube.get("/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            labels = sample.labels
            verb = WRITE_VERBS.get(labels.get("verb", "").lower())
            if not sample.name.endswith("_total") or verb is None:
                continue
            resource = labels.get("resource", "*")
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            counts[(resource, verb)] += int(sample.value)
    return counts


@dataclass
class RssSampler:
    """The operator's resident memory every second, in a thread of its own."""

    process: psutil.Process
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> RssSampler:
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            try:
                rss = self.process.memory_info().rss / 2**20
            except psutil.Error:
                return  # it restarted: what came before is kept, and said so by the count
            self.samples.append((time.monotonic(), rss))

    def peak(self, since: float = 0.0) -> float:
        return max((mb for at, mb in self.samples if at >= since), default=0.0)

    def stop(self) -> None:
        self._stop.set()


class Scale:
    def __init__(self, dev: DevProcess, folder: Path) -> None:
        self.dev = dev
        self.kube = kube_client(dev.kubeconfig, folder)
        self.api = httpx.Client(
            base_url=dev.api_url, headers={"Authorization": f"Bearer {dev.api_key}"}, timeout=300
        )
        self.triggered = 0

    def set_queue(self, **spec: Any) -> None:
        answer = self.kube.patch(
            f"{GROUP_PATH}/taskqueues/{QUEUE}",
            json={"spec": spec},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if answer.is_error:
            raise SystemExit(f"the queue's spec was not changed: {answer.text}")

    def queue_counts(self) -> tuple[int, int]:
        status = self.kube.get(f"{GROUP_PATH}/taskqueues/{QUEUE}").json().get("status") or {}
        return int(status.get("running", 0)), int(status.get("queued", 0))

    def trigger(self, count: int, deadline: float = float("inf")) -> int:
        """`count` runs in batches, two requests at a time; how many were triggered before
        `deadline`."""
        starts = range(self.triggered, self.triggered + count, BATCH)
        end = self.triggered + count

        def batch(start: int) -> int:
            if time.monotonic() > deadline:
                return 0
            items = [
                {"task": TASK, "payload": {"i": i}} for i in range(start, min(end, start + BATCH))
            ]
            self.api.post("/api/v1/tasks/batch", json={"items": items}).raise_for_status()
            return len(items)

        with ThreadPoolExecutor(2) as pool:
            done = sum(pool.map(batch, starts))
        self.triggered += done
        return done

    def runs(self) -> list[dict[str, Any]]:
        """Every TaskRun, listed in pages."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 2000}
        while True:
            page = self.kube.get(f"{GROUP_PATH}/taskruns", params=params).json()
            found += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return found
            params = {"limit": 2000, "continue": token}

    def wait_queued(self, count: int, timeout: float = 300) -> None:
        """Until the operator has queued `count` runs (the queue paused), or `timeout`."""
        deadline = time.monotonic() + timeout
        while self.queue_counts()[1] < count and time.monotonic() < deadline:
            time.sleep(2)

    def wait_all_final(self, count: int, budget: float) -> list[dict[str, Any]]:
        """Every run once `count` have ended, or when `budget` seconds have gone: the queue's
        counts first (cheap), then the runs."""
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            running, queued = self.queue_counts()
            if running == 0 and queued == 0:
                runs = self.runs()
                if sum(1 for r in runs if _phase(r) in FINAL) >= count:
                    return runs
            time.sleep(2)
        return self.runs()


def _phase(run: dict[str, Any]) -> str:
    return str((run.get("status") or {}).get("phase"))


def _finished(run: dict[str, Any]) -> float:
    stamp = str(run["status"]["finishedAt"]).replace("Z", "+00:00")
    return datetime.fromisoformat(stamp).timestamp()


def sustained_rate(finished: list[float], since: float, until: float, complete: bool) -> float:
    """Completions per second: over the middle 80% of them (no ramp-up, no tail) when every
    run ended; else over the window from `since` to `until` (what the budget allowed)."""
    times = sorted(finished)
    if not complete or len(times) < 2:
        return len(times) / (until - since)
    low, high = int(len(times) * 0.1), max(int(len(times) * 0.9) - 1, 1)
    span = times[high] - times[low]
    return (high - low) / span if span > 0 else float("inf")


def throughput(scale: Scale, sampler: RssSampler, args: argparse.Namespace) -> dict[str, Any]:
    """`--runs` runs triggered on the paused queue, then the queue resumed: the completions
    measure the operator's loop at the queue's limit, apart from the API's trigger rate."""
    before = write_counts(scale.kube)
    started = time.monotonic()
    scale.set_queue(paused=True, concurrencyLimit=args.queue_limit)
    scale.trigger(args.runs)
    triggered_in = time.monotonic() - started
    print(f"  {args.runs} runs triggered in {triggered_in:.1f} s", flush=True)
    scale.wait_queued(args.runs)
    # How long the operator took to see every run and queue it, after the last trigger.
    queued_in = time.monotonic() - started - triggered_in
    at_resume = write_counts(scale.kube)
    cpu_before = cpu_by_part(scale.dev)
    resumed = time.time()
    scale.set_queue(paused=False)
    runs = scale.wait_all_final(args.runs, args.budget)
    until = time.time()
    cpu = {part: sec - cpu_before.get(part, 0.0) for part, sec in cpu_by_part(scale.dev).items()}
    after = write_counts(scale.kube)
    phases = Counter(_phase(r) for r in runs)
    completed = [_finished(r) for r in runs if _phase(r) == "Completed"]
    if any(phase in FINAL and phase != "Completed" for phase in phases):
        raise SystemExit(f"runs ended otherwise than Completed: {dict(phases)}")
    complete = len(completed) >= args.runs
    if not completed:
        # Recorded all the same (0 runs/s): what the budget allowed is the finding.
        print(f"  no run completed within {args.budget:.0f} s: {dict(phases)}", flush=True)
    done = max(len(completed), 1)  # per completed run (all counts, when none completed)
    # The writes of triggering (per run triggered) and of running (per run completed: an
    # upper bound when the budget ended the wait, for runs under way wrote some too).
    per_run = {key: n / args.runs for key, n in (at_resume - before).items()}
    for key, n in (after - at_resume).items():
        per_run[key] = per_run.get(key, 0.0) + n / done
    # A cluster that counts by verb only (resource `*`): every write, an upper bound.
    counted = RUN_RESOURCES | {"*"}
    to_runs = sum(n for (what, _), n in per_run.items() if what.split("/")[0] in counted)
    events = sum(n for (resource, _), n in per_run.items() if resource == "events")
    return {
        "runs": args.runs,
        "completed": len(completed),
        "complete": complete,
        "budget_seconds": args.budget,
        "queue_limit": args.queue_limit,
        "simulated_seconds": args.seconds,
        "sustained_runs_per_s": sustained_rate(completed, resumed, until, complete),
        "overall_runs_per_s": len(completed) / ((max(completed) if complete else until) - resumed),
        "trigger_seconds": triggered_in,
        "triggers_per_s": args.runs / triggered_in,
        "queued_seconds_after_trigger": queued_in,
        "phases": dict(phases),
        "writes_per_run": to_runs,
        "events_per_run": events,
        "writes_by_resource_and_verb_per_run": {
            f"{what} {verb}": round(n, 3) for (what, verb), n in sorted(per_run.items())
        },
        # From the resume on: what each part spent on the runs (and on listing them).
        "cpu_ms_per_run_by_part": {part: round(sec * 1000 / done, 2) for part, sec in cpu.items()},
        "rss_peak_mb": sampler.peak(started),
        "rss_median_mb": statistics.median(
            [mb for at, mb in sampler.samples if at >= started] or [0.0]
        ),
    }


def memory_at(scale: Scale, sampler: RssSampler, args: argparse.Namespace) -> dict[str, Any]:
    """The queue paused, runs triggered until `--rss-runs` exist or `--rss-budget` is spent;
    the operator's peak once it has queued them all."""
    scale.set_queue(paused=True)
    since = time.monotonic()
    waiting = scale.queue_counts()[1]
    scale.trigger(args.rss_runs - scale.triggered, since + args.rss_budget)
    waiting += scale.triggered - args.runs
    print(f"  {scale.triggered} TaskRuns exist ({waiting} waiting)", flush=True)
    scale.wait_queued(waiting, timeout=120)
    time.sleep(10)  # ten more samples with every run in the operator's queues
    return {
        "taskruns": scale.triggered,
        "queued": scale.queue_counts()[1],
        "trigger_seconds": time.monotonic() - since,
        "rss_peak_mb": sampler.peak(since),
        "rss_last_mb": sampler.samples[-1][1] if sampler.samples else 0.0,
    }


def _rate(runs_per_s: float | None) -> str:
    return "no bound" if runs_per_s is None else f"{runs_per_s:.1f} runs/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--queue-limit", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=1.0, help="a simulated pod's run time")
    parser.add_argument("--budget", type=float, default=120, help="seconds for the runs to end")
    parser.add_argument("--rss-runs", type=int, default=100_000)
    parser.add_argument("--rss-budget", type=float, default=120, help="seconds for --rss-runs")
    parser.add_argument("--cluster", choices=["real", "embedded"], default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.queue_limit, args.rss_runs = 20, 5, 40
    cluster = args.cluster or cluster_kind()
    env = {"PODTASK_NODE_SIMULATED_SECONDS": str(args.seconds)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dev = DevProcess(
            [str(MODULE)],
            folder / "state",
            cluster=cluster,
            runtime="simulated",
            env=env,
            start_timeout=1800,
        )
        with dev:
            scale = Scale(dev, folder)
            sampler = RssSampler(psutil.Process(dev.part_pid("operator"))).start()
            p7 = throughput(scale, sampler, args)
            many = memory_at(scale, sampler, args) if args.rss_runs > args.runs else None
            sampler.stop()
    ended = "all" if p7["complete"] else f"{p7['completed']} (the --budget ended the wait)"
    print(
        f"{cluster} control plane, simulated node ({args.seconds:g} s a pod): {args.runs} runs "
        f"triggered ({p7['triggers_per_s']:.0f}/s) on a paused queue of limit "
        f"{args.queue_limit}, then resumed; {ended} completed: "
        f"{p7['sustained_runs_per_s']:.1f} runs/s sustained ({p7['overall_runs_per_s']:.1f} "
        f"overall), {p7['writes_per_run']:.2f} writes to TaskRuns and Pods a run "
        f"(+{p7['events_per_run']:.2f} Events)"
    )
    for line, per_run in p7["writes_by_resource_and_verb_per_run"].items():
        print(f"  {line:40} {per_run:8.3f} a run")
    by_part = p7["cpu_ms_per_run_by_part"]
    for part, ms in by_part.items():
        print(f"  CPU of {part:33} {ms:8.2f} ms a run")
    # What this machine allows at those costs: the goal is out of reach here when Kubernetes's
    # own parts alone (or all parts) cost more CPU a run than its cores have for it.
    bound = {
        "cores": cores(),
        "kubernetes_parts": runs_per_s_bound(by_part, cores(), KUBERNETES_PARTS),
        "all_parts": runs_per_s_bound(by_part, cores()),
    }
    print(
        f"  at most, on this machine's {bound['cores']} cores: {_rate(bound['all_parts'])} at "
        f"what all parts spend a run, {_rate(bound['kubernetes_parts'])} at what Kubernetes's "
        f"own parts ({', '.join(KUBERNETES_PARTS)}) spend, whatever podtask's spend"
    )
    raw = {"cluster": cluster, **p7, "runs_per_s_bound_by_cpu": bound}
    record(
        "p7",
        f"sustained runs/s through the operator, simulated node, {cluster} control plane, "
        f"{args.runs} runs ({p7['completed']} completed), queue limit {args.queue_limit}",
        p7["sustained_runs_per_s"],
        Goal(">=", 100),
        raw,
        writes_per_run=p7["writes_per_run"],
    )
    figures: dict[str, float] = {}
    if many is not None:
        print(f"operator RSS with {many['taskruns']} TaskRuns: peak {many['rss_peak_mb']:.0f} MB")
        if many["taskruns"] >= 100_000:
            figures["rss_mb_100k"] = many["rss_peak_mb"]
    record_worst(
        "p5",
        "bench/operator_scale.py",
        f"operator resident memory (peak, MB) with {args.runs} TaskRuns on the simulated node",
        p7["rss_peak_mb"],
        Goal("<", 150),
        {"cluster": cluster, "runs": args.runs, "rss_peak_mb": p7["rss_peak_mb"], "many": many},
        **figures,
    )


if __name__ == "__main__":
    main()
