"""Faults injected by signal, at random points, and what the tests watch while they land.

Every random choice comes from a `random.Random` the test seeds and names in its failure
messages, so a failing round can be replayed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import psutil
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from podtask._cli.devprocess import DevProcess
from podtask._contract.resources import FINAL_PHASES
from podtask._contract.wire import GROUP, LABEL_ATTEMPT, LABEL_RUN, VERSION
from tests.e2e.composed import ROOT, ComposedStack
from tests.e2e.conftest import wait_until

FINAL = frozenset(p.value for p in FINAL_PHASES)


def restart_operator_repeatedly(
    stack: ComposedStack, rng: random.Random, times: int, between: tuple[float, float] = (1, 3)
) -> None:
    """SIGKILL the operator and start it again, `times` times, `between` seconds apart."""
    for _ in range(times):
        time.sleep(rng.uniform(*between))
        stack.kill_operator()
        stack.start_operator()


@dataclass(frozen=True)
class Runner:
    """A runner process: one attempt of one run, in its pod."""

    pid: int
    run: str
    attempt: int


def runners(root: int | None = None) -> list[Runner]:
    """The live runner processes under `root` (by default, this process: the composed
    stack's kubelet runs its pods as our children)."""
    found = []
    parent = psutil.Process(root if root is not None else os.getpid())
    for process in parent.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            command = process.cmdline()
            # The runner itself, not the kubelet's shim whose command line names it too.
            if "podtask_runner" not in command[1:3]:
                continue
            env = process.environ()
            if "PODTASK_RUN_ID" in env and process.status() != psutil.STATUS_ZOMBIE:
                found.append(
                    Runner(process.pid, env["PODTASK_RUN_ID"], int(env["PODTASK_ATTEMPT"]))
                )
    return found


# How long `kill_runners` waits for a first runner to kill.
FIRST_RUNNER_SECONDS = 120.0


def kill_runners(
    rng: random.Random,
    times: int,
    between: tuple[float, float] = (0.3, 1.5),
    spare: Iterable[str] = (),
) -> list[Runner]:
    """SIGKILL a random live runner, `times` times, `between` seconds apart; each run at
    most once (its retries are left alone), and never a run in `spare`. The runners killed.

    The first once some runner is live: on a loaded machine the first pods start well after
    the runs are triggered, and a fixed window could pass with none to kill."""
    killed: list[Runner] = []
    hit = set(spare)
    deadline = time.monotonic() + FIRST_RUNNER_SECONDS
    while not [r for r in runners() if r.run not in hit] and time.monotonic() < deadline:
        time.sleep(0.1)
    for _ in range(times):
        time.sleep(rng.uniform(*between))
        candidates = [r for r in runners() if r.run not in hit]
        if not candidates:
            continue
        victim = rng.choice(sorted(candidates, key=lambda r: r.pid))
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim)
            hit.add(victim.run)
    return killed


DEV_PARTS = ("operator", "api", "cluster")


class DevUnderFaults:
    """`podtask dev` on one state dir, driven from outside as a developer would, while its
    parts (or it all) are SIGKILLed: triggers that outlast a restarting API, reads of the
    cluster that outlast a restarting cluster, and the faults themselves.

    A run is triggered with an idempotency key and asked again, with the same key, until an
    answer comes: a trigger whose answer died with the API creates its run once all the same.
    """

    def __init__(self, modules: list[str], state_dir: Path) -> None:
        self.modules = modules
        self.state_dir = state_dir
        self._dev: DevProcess | None = None
        self.starts = 0

    @property
    def dev(self) -> DevProcess:
        assert self._dev is not None, "not started"
        return self._dev

    @property
    def kubeconfig(self) -> str:
        return str(self.state_dir / "kubeconfig")

    def start(self) -> DevUnderFaults:
        self._dev = DevProcess(self.modules, self.state_dir, cwd=ROOT).start()
        self.starts += 1
        return self

    def stop(self) -> None:
        if self._dev is not None:
            self._dev.stop()

    # --- load -------------------------------------------------------------------------

    def trigger(self, task: str, payload: Any, key: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        problem = ""
        while time.monotonic() < deadline:
            dev = self.dev  # a restart replaces it
            try:
                with httpx.Client(
                    base_url=dev.api_url,
                    headers={"Authorization": f"Bearer {dev.api_key}"},
                    timeout=15,
                ) as http:
                    response = http.post(
                        f"/api/v1/tasks/{task}/trigger",
                        json={"payload": payload, "options": {"idempotencyKey": key}},
                    )
            except httpx.TransportError as exc:
                problem = repr(exc)
            else:
                if response.status_code in (200, 201):
                    return str(response.json()["id"])
                problem = f"{response.status_code} {response.text}"
                # Only what a restarting API or cluster answers is worth asking again.
                assert response.status_code >= 500 or response.status_code == 429, problem
            time.sleep(0.2)
        raise AssertionError(f"trigger {key} got no answer in {timeout} s: {problem}")

    def runs(self) -> dict[str, dict[str, Any]]:
        """The TaskRuns as the cluster holds them, by name."""
        with config.new_client_from_config(config_file=self.kubeconfig) as api:
            listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
                GROUP, VERSION, "default", "taskruns", _request_timeout=15
            )
        return {r["metadata"]["name"]: r for r in listed["items"]}

    def wait_all(self, ids: Iterable[str], timeout: float = 600) -> dict[str, dict[str, Any]]:
        """The runs `ids` once every one of them is final (the cluster may be restarting)."""
        wanted = set(ids)

        def done() -> dict[str, dict[str, Any]] | None:
            try:
                runs = self.runs()
            except (ApiException, urllib3.exceptions.HTTPError, OSError, ConfigException):
                return None
            finished = {
                n: r
                for n, r in runs.items()
                if n in wanted and (r.get("status") or {}).get("phase") in FINAL
            }
            return finished if len(finished) == len(wanted) else None

        return wait_until(done, timeout=timeout, interval=0.5)  # type: ignore[no-any-return]

    # --- faults -----------------------------------------------------------------------

    def kill_part(self, part: str) -> bool:
        """SIGKILL one part's current process; False when it is down (being restarted)."""
        try:
            pid = self.dev.part_pid(part)
        except LookupError:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            return True
        return False

    def kill_runner(self, rng: random.Random) -> Runner | None:
        candidates = sorted(runners(self.dev.pid), key=lambda r: r.pid)
        if not candidates:
            return None
        victim = rng.choice(candidates)
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGKILL)
            return victim
        return None

    def kill_and_start_again(self, pause: float) -> None:
        """SIGKILL `podtask dev` itself, wait `pause` seconds, and start it again on the same
        state dir, as a developer whose terminal died would."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.dev.pid, signal.SIGKILL)
        self.dev.stop()  # reaps it
        time.sleep(pause)
        self.start()


def inject_dev_faults(
    stack: DevUnderFaults,
    rng: random.Random,
    times: int,
    parts: tuple[str, ...] = (*DEV_PARTS, "runner"),
    between: tuple[float, float] = (1, 3),
) -> list[str]:
    """SIGKILL a part (or a runner), `times` times, `between` seconds apart: each of `parts`
    at least once when `times` allows, the rest chosen at random, in a random order. What each
    fault hit, in words (a part that is being restarted is missed)."""
    chosen = [*parts[:times], *(rng.choice(parts) for _ in range(times - len(parts)))]
    rng.shuffle(chosen)
    landed = []
    for part in chosen:
        time.sleep(rng.uniform(*between))
        if part == "runner":
            victim = stack.kill_runner(rng)
            landed.append(f"runner of {victim.run}#{victim.attempt}" if victim else "no runner")
        else:
            landed.append(part if stack.kill_part(part) else f"{part} (down)")
    return landed


def restart_dev_repeatedly(
    stack: DevUnderFaults,
    rng: random.Random,
    times: int,
    between: tuple[float, float] = (1, 3),
    pause: tuple[float, float] = (0, 1),
) -> None:
    """SIGKILL the whole `podtask dev` and start it again, `times` times."""
    for _ in range(times):
        time.sleep(rng.uniform(*between))
        stack.kill_and_start_again(rng.uniform(*pause))


class Load:
    """Runs triggered one by one in the background, at random moments, while faults land."""

    def __init__(
        self,
        stack: DevUnderFaults,
        task: str,
        payloads: list[dict[str, Any]],
        key_prefix: str,
        rng: random.Random,
        spread: float,
    ) -> None:
        self._stack = stack
        self._task = task
        self._payloads = payloads
        self._prefix = key_prefix
        self._pauses = [rng.uniform(0, 2 * spread / max(1, len(payloads))) for _ in payloads]
        self.ids: list[str] = []
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._trigger_all, daemon=True, name="load")

    def start(self) -> Load:
        self._thread.start()
        return self

    def _trigger_all(self) -> None:
        try:
            for i, (payload, pause) in enumerate(zip(self._payloads, self._pauses, strict=True)):
                self.ids.append(self._stack.trigger(self._task, payload, f"{self._prefix}-{i}"))
                time.sleep(pause)
        except BaseException as exc:  # reported by join, in the test's thread
            self._failure = exc

    def join(self, timeout: float = 600) -> list[str]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the load did not finish triggering"
        if self._failure is not None:
            raise self._failure
        return self.ids


class ClusterWatch:
    """One kind of object followed from outside the stack by a watch of the cluster, through
    the cluster's own restarts: a dropped connection is opened again (the kubeconfig read again,
    for a restarted `podtask dev` listens on another port), from the last version seen.

    A restarted cluster starts its watch history afresh, so resuming across its restart gets
    410 Gone and the watch lists everything again (a relist): what changed in the gap is seen
    only as where it ended. `relists` counts them; a test without cluster restarts expects none.
    """

    plural = ""
    name = "cluster-watch"

    def __init__(self, kubeconfig: str, namespace: str = "default") -> None:
        self._kubeconfig = kubeconfig
        self._namespace = namespace
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name=self.name)
        self._api = self._connect()
        self.relists = 0
        self.reconnects = 0

    def start(self) -> Self:
        self._version = self._relist()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self._api.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _see(self, obj: dict[str, Any]) -> None:
        raise NotImplementedError

    def _connect(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=self._kubeconfig)

    def _list_call(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        if self.plural == "pods":
            return client.CoreV1Api(self._api).list_namespaced_pod, (self._namespace,)
        objects = client.CustomObjectsApi(self._api)
        return objects.list_namespaced_custom_object, (GROUP, VERSION, self._namespace, self.plural)

    def _relist(self) -> str:
        call, args = self._list_call()
        listed = json.loads(call(*args, _preload_content=False).data)
        for obj in listed["items"]:
            self._see(obj)
        return str(listed["metadata"]["resourceVersion"])

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow_once()
            except ApiException as exc:
                if exc.status != 410:
                    self._reconnect()
                    continue
                # Too old to go on from: transitions in the gap are lost, so count it.
                self.relists += 1
                self._resume(relist=True)
            except (urllib3.exceptions.HTTPError, OSError, ValueError):
                self._reconnect()

    def _follow_once(self) -> None:
        call, args = self._list_call()
        stream = watch.Watch()
        for event in stream.stream(call, *args, resource_version=self._version, timeout_seconds=5):
            obj = event["raw_object"]
            self._version = obj["metadata"]["resourceVersion"]
            if event["type"] in ("ADDED", "MODIFIED"):
                self._see(obj)
            if self._stop.is_set():
                break

    def _reconnect(self) -> None:
        """The cluster is gone for now (killed, restarting, or `podtask dev` started again)."""
        self.reconnects += 1
        time.sleep(0.2)
        self._resume(relist=False)

    def _resume(self, relist: bool) -> None:
        while not self._stop.is_set():
            try:
                self._api.close()
                self._api = self._connect()
                if relist:
                    self._version = self._relist()
                return
            except (
                ApiException,
                urllib3.exceptions.HTTPError,
                OSError,
                ValueError,
                ConfigException,
            ):
                time.sleep(0.2)


class PhaseWatch(ClusterWatch):
    """Every phase each TaskRun passes through: a run that ends twice (a final phase, then
    another) shows here."""

    plural = "taskruns"
    name = "phase-watch"

    def __init__(self, kubeconfig: str, namespace: str = "default") -> None:
        self._phases: dict[str, list[str]] = {}
        super().__init__(kubeconfig, namespace)

    def phases(self, run: str) -> list[str]:
        with self._lock:
            return list(self._phases.get(run, []))

    def _see(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        phase = (obj.get("status") or {}).get("phase")
        if phase is None:
            return
        with self._lock:
            seen = self._phases.setdefault(name, [])
            if not seen or seen[-1] != phase:
                seen.append(phase)

    def assert_each_ended_once(
        self, runs: Iterable[str], context: str = "", *, across_restarts: bool = False
    ) -> None:
        """Each run reached a final phase exactly once, and stayed there.

        `across_restarts`: the cluster restarted, so the watch may have listed again (see
        `ClusterWatch`). A run seen final before such a gap and still the same after it is
        taken as having stayed there: leaving it and coming back within the gap would take a
        new attempt, which the ledger (a start after the completed attempt) and the `PodWatch`
        (a pod after it) show. A final phase followed by another phase still fails here.
        """
        runs = list(runs)
        # The watch lags behind a read of the runs (which said they ended): its events are
        # waited for first, generously; what it then shows is judged.
        with contextlib.suppress(AssertionError):
            wait_until(
                lambda: all(any(p in FINAL for p in self.phases(run)) for run in runs),
                timeout=60,
            )
        problems = {}
        for run in runs:
            phases = self.phases(run)
            finals = [p for p in phases if p in FINAL]
            if len(finals) != 1 or phases[-1] not in FINAL:
                problems[run] = phases
        assert not problems, f"runs that did not end exactly once {context}: {problems}"
        if not across_restarts:
            assert self.relists == 0, f"the watch lost {self.relists} stretches of history"


class PodWatch(ClusterWatch):
    """Every pod the cluster held, by the run and attempt its labels name: one attempt with
    two pods (two names, or one name created twice) shows here."""

    plural = "pods"
    name = "pod-watch"

    def __init__(self, kubeconfig: str, namespace: str = "default") -> None:
        self._pods: dict[tuple[str, int], set[tuple[str, str]]] = {}
        super().__init__(kubeconfig, namespace)

    def _see(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        if LABEL_RUN not in labels or LABEL_ATTEMPT not in labels:
            return
        key = (labels[LABEL_RUN], int(labels[LABEL_ATTEMPT]))
        with self._lock:
            self._pods.setdefault(key, set()).add((meta["name"], meta["uid"]))

    def pods(self, run: str) -> dict[int, set[tuple[str, str]]]:
        """(name, uid) of the pods of each attempt of `run`."""
        with self._lock:
            return {a: set(p) for (r, a), p in self._pods.items() if r == run}

    def assert_one_pod_per_attempt(self, runs: Iterable[str], context: str = "") -> None:
        """Each attempt of these runs had one pod, named `<run>-<attempt>`."""
        problems = {}
        for run in runs:
            for attempt, pods in self.pods(run).items():
                if len(pods) != 1 or next(iter(pods))[0] != f"{run}-{attempt}":
                    problems[f"{run} attempt {attempt}"] = sorted(pods)
        assert not problems, f"attempts without exactly one pod {context}: {problems}"
