"""Faults injected by signal, at random points, and what the tests watch while they land.

Every random choice comes from a `random.Random` the test seeds and names in its failure
messages, so a failing round can be replayed.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from podtask.resources import FINAL_PHASES, GROUP, VERSION
from tests.e2e.composed import ComposedStack

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


def kill_runners(
    rng: random.Random,
    times: int,
    between: tuple[float, float] = (0.3, 1.5),
    spare: Iterable[str] = (),
) -> list[Runner]:
    """SIGKILL a random live runner, `times` times, `between` seconds apart; each run at
    most once (its retries are left alone), and never a run in `spare`. The runners killed."""
    killed: list[Runner] = []
    hit = set(spare)
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


class PhaseWatch:
    """Every phase each TaskRun passes through, from a watch of the cluster kept outside
    the stack: a run that ends twice (a final phase, then another) shows here."""

    def __init__(self, kubeconfig: str, namespace: str = "default") -> None:
        self._api = config.new_client_from_config(config_file=kubeconfig)
        self._objects = client.CustomObjectsApi(self._api)
        self._namespace = namespace
        self._lock = threading.Lock()
        self._phases: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="phase-watch")
        self.relists = 0

    def start(self) -> PhaseWatch:
        self._version = self._relist()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self._api.close()

    def phases(self, run: str) -> list[str]:
        with self._lock:
            return list(self._phases.get(run, []))

    def _see(self, obj: dict[str, object]) -> None:
        name = obj["metadata"]["name"]  # type: ignore[index]
        phase = (obj.get("status") or {}).get("phase")  # type: ignore[attr-defined]
        if phase is None:
            return
        with self._lock:
            seen = self._phases.setdefault(name, [])
            if not seen or seen[-1] != phase:
                seen.append(phase)

    def _relist(self) -> str:
        listed = self._objects.list_namespaced_custom_object(
            GROUP, VERSION, self._namespace, "taskruns"
        )
        for obj in listed["items"]:
            self._see(obj)
        return str(listed["metadata"]["resourceVersion"])

    def _follow(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self._objects.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self._namespace,
                    "taskruns",
                    resource_version=self._version,
                    timeout_seconds=5,
                ):
                    obj = event["object"]
                    self._version = obj["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._see(obj)
                    if self._stop.is_set():
                        break
            except ApiException as exc:
                if exc.status != 410:
                    raise
                # Too old to go on from: transitions in the gap are lost, so say so.
                self.relists += 1
                self._version = self._relist()

    def assert_each_ended_once(self, runs: Iterable[str], context: str = "") -> None:
        """Each run reached a final phase exactly once, and stayed there."""
        problems = {}
        for run in runs:
            phases = self.phases(run)
            finals = [p for p in phases if p in FINAL]
            if len(finals) != 1 or phases[-1] not in FINAL:
                problems[run] = phases
        assert not problems, f"runs that did not end exactly once {context}: {problems}"
        assert self.relists == 0, f"the watch lost {self.relists} stretches of history"
