"""Runner start-up (p6): from spawning the runner as a pod runs it to its task's first line,
minus the start-up of a bare interpreter (`python -c pass`), medians measured interleaved.

What is spawned is what a node runs for an attempt: the operator builds the attempt's pod
(`pods.pod_for_attempt`) and its token Secret, and the dev node's planner
(`podtask_devcluster.podenv.plan_container`) turns the pod's container into an argv,
environment and working directory, as it does for every pod it runs as a process. The runner
then does all it does in a pod before the task runs: it reads its environment, fetches its
attempt from a real API (`python -m podtask_api` over the embedded cluster, where each sample's
TaskRun is created and marked started as the operator does), starts shipping its log, imports
the task module and calls the task, whose first line prints a marker. `--local` would skip
the API client and the fetch, which are part of what a pod pays, so it is not used here.

Usage: python bench/runner_startup.py [--spawns N] [--quick]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

import httpx
from kubernetes import client, config

import podtask
import podtask_runner
from podtask._contract.crds import custom_resource_definitions
from podtask._contract.resources import QueueRef, TaskRunSpec, TaskSpec
from podtask._contract.wire import GROUP, VERSION
from podtask._control.attempt_tokens import sign_attempt_token
from podtask_api.run_names import random_run_name
from podtask_api.task_runs import build_task_run
from podtask_api.trigger_requests import TriggerRequest
from podtask_devcluster import EmbeddedCluster
from podtask_devcluster.podenv import Placement, plan_container
from podtask_devcluster.ports import free_port
from podtask_operator.pods import pod_for_attempt, pod_name, token_secret_for_attempt
from podtask_operator.settings import OperatorSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "tasks"))
from first_line import MARKER
from results import Goal, record

HERE = Path(__file__).resolve().parent
TASKS = HERE / "tasks"
MODULE = TASKS / "first_line.py"

TASK_ID = "first-line"
MACHINE = "small-1x"
SECRET = "runner-startup-bench-secret"
DEADLINE_SECONDS = 120.0


class Bench:
    """The embedded cluster with the CRDs, a namespace, and the API serving it."""

    def __init__(self, cluster: EmbeddedCluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        # The client's stubs type bodies as its model classes; it takes plain dicts as well.
        self.kube = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(cluster.kubeconfig_path)
        )
        extensions: Any = client.ApiextensionsV1Api(self.kube)
        for crd in custom_resource_definitions():
            extensions.create_custom_resource_definition(crd)
        self.namespace = f"startup-{uuid.uuid4().hex[:8]}"
        self.core: Any = cast(Any, client.CoreV1Api(self.kube))
        self.core.create_namespace({"metadata": {"name": self.namespace}})
        self.objects: Any = client.CustomObjectsApi(self.kube)
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.api = subprocess.Popen(
            [
                *(sys.executable, "-m", "podtask_api"),
                *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            ],
            env={
                **os.environ,
                "PODTASK_KUBECONFIG": str(cluster.kubeconfig_path),
                "PODTASK_NAMESPACE": self.namespace,
                "PODTASK_RUNNER_TOKEN_SECRET": SECRET,
                "PODTASK_API_KEY_HASHES": "",
            },
            stderr=subprocess.DEVNULL,
        )
        self._wait_for_api()
        self.settings = OperatorSettings(
            namespace=self.namespace,
            api_url=self.api_url,
            runner_token_secret=SECRET,
            dev_source_dir=str(TASKS),
        )

    def _wait_for_api(self) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise SystemExit(f"the API exited with {self.api.returncode}")
            try:
                if httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit("the API did not start")

    def close(self) -> None:
        self.api.terminate()
        self.api.wait(timeout=30)
        self.kube.close()

    def started_attempt(self) -> tuple[list[str], dict[str, str], str, str]:
        """A TaskRun whose attempt 1 the operator has just started: the argv, environment and
        working directory its pod's runner gets, and the run's name."""
        name = random_run_name()
        spec = TaskSpec(
            task_id=TASK_ID,
            image="local",
            module=str(MODULE),
            version="1",
            queue=QueueRef(name=TASK_ID),
            machine=MACHINE,
        )
        body = build_task_run(spec, TriggerRequest.model_validate({"payload": None}), name)
        run: dict[str, Any] = self.objects.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "taskruns", body
        )
        token = sign_attempt_token(SECRET.encode(), name, 1, ttl_seconds=600)
        secret = token_secret_for_attempt(run, 1, token)
        self.core.create_namespaced_secret(self.namespace, secret)
        pod = pod_for_attempt(
            run, TaskRunSpec.model_validate(run["spec"]), 1, MACHINE, self.settings
        )
        self.objects.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace,
            "taskruns",
            name,
            {
                "status": {
                    "phase": "Executing",
                    "attempt": 1,
                    "machine": MACHINE,
                    "attempts": [{"number": 1, "pod": pod_name(name, 1), "machine": MACHINE}],
                }
            },
        )

        def lookup(kind: str, namespace: str, wanted: str) -> dict[str, Any] | None:
            return secret if kind == "secret" and wanted == secret["metadata"]["name"] else None

        plan = plan_container(
            pod,
            pod["spec"]["containers"][0],
            lookup,
            Placement("bench", "127.0.0.1", "127.0.0.1"),
            self.workdir,
        )
        return plan.argv, plan.env, plan.cwd, name

    def reported(self, name: str) -> bool:
        run = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "taskruns", name
        )
        return bool((run.get("status") or {}).get("report", {}).get("ok"))


def to_first_line(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """Seconds from spawning the runner to the marker on its stdout, and the CPU seconds the
    runner had used by then (the task prints them); then waits for the runner's end."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    elapsed = cpu = None
    for line in process.stdout:
        if elapsed is None and line.startswith(MARKER):
            elapsed = time.perf_counter() - started
            cpu = float(line.rsplit("cpu=", 1)[1])
    code = process.wait(timeout=DEADLINE_SECONDS)
    if elapsed is None or cpu is None or code != 0:
        raise SystemExit(f"the runner exited with {code} without the task's first line")
    return elapsed, cpu


def bare_interpreter() -> tuple[float, float]:
    """Seconds from spawning `python -c pass` to its end, and the CPU seconds it used."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"python -c pass exited with {process.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime


def compiled_packages() -> None:
    """Write the bytecode of podtask and the runner, as pip does when it installs them in the
    runner's image: an editable install under PYTHONDONTWRITEBYTECODE would compile every
    module at each start. (The task module is compiled at each start, as in a pod.)"""
    for package in (podtask, podtask_runner):
        for folder in package.__path__:
            compileall.compile_dir(folder, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spawns", type=int, default=20, help="samples of each (default 20)")
    parser.add_argument("--quick", action="store_true", help="3 samples: a smoke run")
    args = parser.parse_args()
    spawns = 3 if args.quick else args.spawns
    compiled_packages()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        with EmbeddedCluster(state, port=0, workdir=Path(tmp), node=False) as cluster:
            bench = Bench(cluster, Path(tmp))
            try:
                runner: list[tuple[float, float]] = []
                bare: list[tuple[float, float]] = []
                # One unmeasured spawn of each first: the page cache holds the files after it.
                argv, env, cwd, _ = bench.started_attempt()
                to_first_line(argv, env, cwd)
                bare_interpreter()
                for _ in range(spawns):
                    argv, env, cwd, name = bench.started_attempt()
                    runner.append(to_first_line(argv, env, cwd))
                    bare.append(bare_interpreter())
                    if not bench.reported(name):
                        raise SystemExit(f"run {name} has no successful report")
            finally:
                bench.close()
    runner_ms = [round(wall * 1000, 1) for wall, _ in runner]
    bare_ms = [round(wall * 1000, 1) for wall, _ in bare]
    runner_cpu_ms = [round(cpu * 1000, 1) for _, cpu in runner]
    bare_cpu_ms = [round(cpu * 1000, 1) for _, cpu in bare]
    wall = statistics.median(runner_ms) - statistics.median(bare_ms)
    cpu = statistics.median(runner_cpu_ms) - statistics.median(bare_cpu_ms)
    print(
        f"runner to the task's first line: median {statistics.median(runner_ms):.1f} ms "
        f"({statistics.median(runner_cpu_ms):.1f} ms of CPU) over {spawns} spawns; "
        f"python -c pass: {statistics.median(bare_ms):.1f} ms "
        f"({statistics.median(bare_cpu_ms):.1f} ms of CPU)"
    )
    record(
        "p6",
        "runner start-up to the task's first line, minus python -c pass (ms)",
        round(wall, 1),
        Goal("<", 150),
        {
            "runner_median_ms": statistics.median(runner_ms),
            "python_pass_median_ms": statistics.median(bare_ms),
            "runner_ms": runner_ms,
            "python_pass_ms": bare_ms,
            "runner_cpu_ms": runner_cpu_ms,
            "python_pass_cpu_ms": bare_cpu_ms,
            "spawns": spawns,
        },
        cpu_ms=round(cpu, 1),
    )


if __name__ == "__main__":
    main()
