"""Housekeeping against the embedded cluster: real attempt pods run by its kubelet, real
TaskRuns; a sweep deletes exactly what is due, and a deleted run takes its pods along. The
sweeps' index is filled from a listing here, as kopf's watches fill it when they start."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from podtask._contract.batch_markers import (
    LABEL_BATCH,
    batch_run_name,
    marker_name,
    new_marker,
    owner_reference,
    read_marker,
)
from podtask._contract.resources import TaskRunSpec
from podtask._contract.wire import API_VERSION, GROUP, LABEL_ATTEMPT, LABEL_RUN, TASK_RUNS, VERSION
from podtask_operator.housekeeping import HousekeepingClient, run_housekeeping, sweep_once
from podtask_operator.sweep_index import SweepIndex
from tests.embedded_kube import EmbeddedKube, KubeNamespace, run_then_close

SPEC = TaskRunSpec.model_validate(
    {
        "taskId": "hello-world",
        "version": "v1",
        "image": "registry.example/tasks:v1",
        "module": "tasks.hello",
        "machine": "small-1x",
        "queue": {"name": "hello-world"},
        "payload": {},
    }
)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def watched(kube: EmbeddedKube, namespace: str) -> SweepIndex:
    """The sweep index of what the namespace holds now: its runs and attempt pods."""
    index = SweepIndex()
    custom, core = client.CustomObjectsApi(kube.api), client.CoreV1Api(kube.api)
    for run in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, TASK_RUNS)["items"]:
        index.observe_run(run)
    pods = core.list_namespaced_pod(namespace, label_selector=LABEL_RUN)
    for pod in core.api_client.sanitize_for_serialization(pods)["items"]:
        index.observe_pod(pod)
    return index


class Runs:
    def __init__(self, kube: EmbeddedKube, namespace: KubeNamespace) -> None:
        self.namespace = namespace
        self.core = client.CoreV1Api(kube.api)

    def run(self, name: str, phase: str, finished_ago: timedelta | None = None) -> str:
        self.namespace.create_run(
            {
                "apiVersion": API_VERSION,
                "kind": "TaskRun",
                "metadata": {"name": name},
                "spec": SPEC.to_wire(),
            }
        )
        status: dict[str, Any] = {"phase": phase}
        if finished_ago is not None:
            status["finishedAt"] = (datetime.now(UTC) - finished_ago).isoformat()
        self.namespace.set_run_status(name, status)
        return str(self.namespace.run(name)["metadata"]["uid"])

    def pod(self, run: str, uid: str, attempt: int, script: str) -> str:
        name = f"{run}-{attempt}"
        self.core.create_namespaced_pod(
            self.namespace.name,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "labels": {LABEL_RUN: run, LABEL_ATTEMPT: str(attempt)},
                    "ownerReferences": [
                        {
                            "apiVersion": API_VERSION,
                            "kind": "TaskRun",
                            "name": run,
                            "uid": uid,
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "task", "image": "x", "command": [sys.executable, "-c", script]}
                    ],
                },
            },
        )
        return name

    def phase(self, pod: str) -> str | None:
        try:
            return str(self.core.read_namespaced_pod(pod, self.namespace.name).status.phase)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pods(self) -> list[str]:
        listed = self.core.list_namespaced_pod(self.namespace.name)
        return sorted(p.metadata.name for p in listed.items)


def test_sweeps_delete_what_is_due_and_nothing_else(embedded_kube: EmbeddedKube) -> None:
    namespace = embedded_kube.new_namespace("housekeeping")
    kube = Runs(embedded_kube, namespace)
    done = kube.run("done", "Completed", finished_ago=timedelta(0))
    kube.pod("done", done, 1, "raise SystemExit(1)")
    kube.pod("done", done, 2, "pass")
    live = kube.run("live", "WaitingToRetry")
    kube.pod("live", live, 1, "raise SystemExit(1)")
    canceled = kube.run("canceled", "Canceled", finished_ago=timedelta(0))
    kube.pod("canceled", canceled, 1, "import time; time.sleep(60)")  # still running
    old = kube.run("old", "Completed", finished_ago=timedelta(days=8))
    kube.pod("old", old, 1, "pass")
    for pod, phase in [
        ("done-1", "Failed"),
        ("done-2", "Succeeded"),
        ("live-1", "Failed"),
        ("old-1", "Succeeded"),
        ("canceled-1", "Running"),
    ]:
        wait_for(lambda pod=pod, phase=phase: kube.phase(pod) == phase, 15, f"{pod} {phase}")
    housekeeping = HousekeepingClient(embedded_kube.login, namespace.name)

    async def sweep(pod_retention: float, run_retention: float) -> tuple[list[str], list[str]]:
        result = await sweep_once(
            housekeeping,
            watched(embedded_kube, namespace.name),
            now=datetime.now(UTC),
            pod_retention=timedelta(seconds=pod_retention),
            run_retention=timedelta(seconds=run_retention),
        )
        return result.deleted_runs, result.deleted_pods

    # Only the run past its retention goes; its pod goes with it (ownerReference).
    assert run_then_close(housekeeping, sweep(3600, 7 * 86400)) == (["old"], [])
    wait_for(lambda: "old-1" not in kube.pods(), 10, "old-1 to be garbage-collected")
    assert namespace.run_names() == ["canceled", "done", "live"]

    # A tiny pod retention: the finished pods of the final run go; the run's pods that the
    # operator may still need (run not final) and the running pod stay.
    assert run_then_close(housekeeping, sweep(0, 7 * 86400)) == ([], ["done-1", "done-2"])
    assert kube.pods() == ["canceled-1", "live-1"]
    assert run_then_close(housekeeping, sweep(0, 7 * 86400)) == ([], [])  # nothing left that is due

    # The loop, with a tiny run retention: the final runs go, their pods with them.
    async def loop_until_swept() -> None:
        task = asyncio.create_task(
            run_housekeeping(
                housekeeping,
                watched(embedded_kube, namespace.name),
                interval_seconds=0.1,
                pod_retention=timedelta(0),
                run_retention=timedelta(0),
            )
        )
        try:
            await asyncio.to_thread(
                wait_for, lambda: namespace.run_names() == ["live"], 10, "final runs to go"
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    run_then_close(housekeeping, loop_until_swept())
    wait_for(lambda: kube.pods() == ["live-1"], 15, "the canceled run's pod to go with it")


def test_an_abandoned_batch_goes_with_its_runs_and_a_committed_one_stays(
    embedded_kube: EmbeddedKube,
) -> None:
    namespace = embedded_kube.new_namespace("batches")
    core = client.CoreV1Api(embedded_kube.api)
    when = datetime.now(UTC) - timedelta(minutes=11)

    def batch(batch_id: str, state: str) -> list[str]:
        body = new_marker(batch_id, batch_id, 2, ["hello-world"], "d", when)
        body["data"]["state"] = state
        created = core.create_namespaced_config_map(namespace.name, body)
        marker = read_marker(core.api_client.sanitize_for_serialization(created))
        assert marker is not None
        names = [batch_run_name(batch_id, i) for i in range(2)]
        for name in names:
            namespace.create_run(
                {
                    "apiVersion": API_VERSION,
                    "kind": "TaskRun",
                    "metadata": {
                        "name": name,
                        "labels": {LABEL_BATCH: batch_id},
                        "ownerReferences": [owner_reference(marker)],
                    },
                    "spec": SPEC.to_wire(),
                }
            )
        return names

    abandoned = batch("0abandoned", "open")
    committed = batch("0committed", "committed")
    housekeeping = HousekeepingClient(embedded_kube.login, namespace.name)
    # Before the watches showed any run (an operator just started, or behind a burst): the
    # committed batch's runs are there all the same, and its marker stays.
    unseen = run_then_close(
        housekeeping,
        sweep_once(
            housekeeping,
            SweepIndex(),
            now=datetime.now(UTC),
            pod_retention=timedelta(hours=1),
            run_retention=timedelta(days=7),
            batch_abandon_after=timedelta(minutes=10),
        ),
    )
    assert unseen.deleted_markers == [marker_name("0abandoned")]
    result = run_then_close(
        housekeeping,
        sweep_once(
            housekeeping,
            watched(embedded_kube, namespace.name),
            now=datetime.now(UTC),
            pod_retention=timedelta(hours=1),
            run_retention=timedelta(days=7),
            batch_abandon_after=timedelta(minutes=10),
        ),
    )
    assert result.deleted_markers == []
    wait_for(
        lambda: namespace.run_names() == sorted(committed), 15, "the abandoned runs to be collected"
    )
    assert sorted(set(abandoned) & set(namespace.run_names())) == []
