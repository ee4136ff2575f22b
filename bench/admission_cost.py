"""The operator's CPU time per admission, with 100 runs waiting and with 10,000 waiting.

For each backlog size, in one `podtask dev` stack: pause the queue, trigger the
backlog (batches of 1,000), wait until the operator has queued all of it, then
resume the queue and measure the operator process's CPU time (user + system,
all threads) over the next K completed runs. Prints both and their ratio, which
should stay near 1: admitting the next run must not cost more when more wait.

Usage: python bench/admission_cost.py [--small 100] [--large 10000] [--admissions 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import yaml

from podtask._cli.devprocess import DevProcess

HERE = Path(__file__).resolve().parent
MODULE = HERE / "tasks" / "admission.py"
QUEUE = "bench-admission"
TASK = "bench-admission"


def _operator(dev: DevProcess) -> psutil.Process:
    for child in psutil.Process(dev.pid).children(recursive=True):
        if "podtask_operator" in " ".join(child.cmdline()):
            return child
    raise SystemExit("no operator process found under podtask dev")


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _wait_until_idle(process: psutil.Process, timeout: float = 600) -> None:
    """Until the process used under 2% of a core for a whole second."""
    deadline = time.monotonic() + timeout
    last = _cpu_seconds(process)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = _cpu_seconds(process)
        if now - last < 0.02:
            return
        last = now
    raise SystemExit("the operator never went idle")


class Bench:
    def __init__(self, dev: DevProcess) -> None:
        config = yaml.safe_load(Path(dev.kubeconfig).read_text())
        self.kube = httpx.Client(base_url=config["clusters"][0]["cluster"]["server"], timeout=60)
        self.api = httpx.Client(
            base_url=dev.api_url, headers={"Authorization": f"Bearer {dev.api_key}"}, timeout=120
        )
        self.queue_path = f"/apis/podtask.dev/v1alpha1/namespaces/default/taskqueues/{QUEUE}"
        self.runs_path = "/apis/podtask.dev/v1alpha1/namespaces/default/taskruns"

    def set_paused(self, paused: bool) -> None:
        body = {"spec": {"paused": paused, "concurrencyLimit": 4}}
        headers = {"Content-Type": "application/merge-patch+json"}
        if self.kube.patch(self.queue_path, json=body, headers=headers).status_code == 404:
            self.kube.post(
                self.queue_path.rsplit("/", 1)[0],
                json={
                    "apiVersion": "podtask.dev/v1alpha1",
                    "kind": "TaskQueue",
                    "metadata": {"name": QUEUE},
                    **body,
                },
            ).raise_for_status()

    def queue_counts(self) -> tuple[int, int]:
        status = self.kube.get(self.queue_path).json().get("status") or {}
        return int(status.get("running", 0)), int(status.get("queued", 0))

    def trigger(self, count: int) -> None:
        for start in range(0, count, 1000):
            items = [
                {"task": TASK, "payload": {"i": i}} for i in range(start, min(count, start + 1000))
            ]
            self.api.post("/api/v1/tasks/batch", json={"items": items}).raise_for_status()

    def completed(self) -> int:
        runs = self.kube.get(self.runs_path).json()["items"]
        return sum(1 for r in runs if (r.get("status") or {}).get("phase") == "Completed")

    def wait(self, check: object, what: str, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while not check():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            time.sleep(0.5)


def cpu_per_admission(waiting: int, admissions: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, DevProcess([str(MODULE)], Path(tmp) / "s") as dev:
        bench = Bench(dev)
        operator = _operator(dev)
        bench.set_paused(True)
        bench.trigger(waiting + admissions)
        bench.wait(lambda: bench.queue_counts()[1] >= waiting + admissions, "the backlog")
        _wait_until_idle(operator)  # the backlog's Queued writes and their echoes are done
        before = _cpu_seconds(operator)
        bench.set_paused(False)
        bench.wait(lambda: bench.completed() >= admissions, f"{admissions} completions")
        return (_cpu_seconds(operator) - before) / admissions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--admissions", type=int, default=40)
    args = parser.parse_args()
    small = cpu_per_admission(args.small, args.admissions)
    large = cpu_per_admission(args.large, args.admissions)
    print(f"operator CPU per admission, {args.small:>6} waiting: {small * 1000:8.2f} ms")
    print(f"operator CPU per admission, {args.large:>6} waiting: {large * 1000:8.2f} ms")
    print(f"ratio large/small:                          {large / small:8.3f}")


if __name__ == "__main__":
    main()
