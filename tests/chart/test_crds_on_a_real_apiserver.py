"""The CRDs on a real kube-apiserver: accepted (structural, CEL within its cost limits), a bad
TaskRun refused with a 422 naming the field (kubectl's own error for an unknown machine),
and every status the operator writes, every phase and every attempt outcome, accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from podtask._contract.machines import PRESETS
from podtask._contract.resources import RunError, RunPhase, RunWait, TaskRunSpec
from podtask._contract.resources import TaskRunStatus as Status
from podtask._contract.run_endings import finished
from podtask._contract.wire import API_VERSION, GROUP, VERSION
from podtask_devcluster.control_plane import ControlPlane
from podtask_operator.attempts import AttemptKind, ClassifiedAttempt
from podtask_operator.lifecycle import end_attempt, start_attempt, waiting
from podtask_operator.run_writes import status_patch
from podtask_operator.waits import released, resumed
from tests.control_plane.control_plane_testing import kubectl
from tests.real_crds import CRD_PATH, crd_manifests, install_crds, new_namespace

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
SPEC: dict[str, Any] = {
    "taskId": "hello-world",
    "version": "v1",
    "image": "registry.example/tasks:v1",
    "module": "tasks.hello",
    "machine": "micro",
    "queue": {"name": "emails", "concurrencyLimit": 2},
    "retry": {"maxAttempts": 3, "outOfMemory": {"machine": "small-1x"}},
}


@pytest.fixture(scope="module")
def namespace(real_control_plane: ControlPlane) -> str:
    install_crds(real_control_plane)
    return new_namespace(real_control_plane, "crds")


def _runs(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/taskruns"


def _create(client: httpx.Client, namespace: str, name: str, spec: Any) -> httpx.Response:
    body = {"apiVersion": API_VERSION, "kind": "TaskRun", "metadata": {"name": name}}
    return client.post(_runs(namespace), json={**body, "spec": spec})


def _refused_fields(answer: httpx.Response) -> set[str]:
    assert answer.status_code == 422, answer.text
    return {cause["field"] for cause in answer.json()["details"]["causes"]}


def test_the_crds_are_structural_and_established(real_control_plane: ControlPlane) -> None:
    install_crds(real_control_plane)
    for crd in crd_manifests():
        found = real_control_plane.client().get(f"{CRD_PATH}/{crd['metadata']['name']}").json()
        conditions = {c["type"]: c["status"] for c in found["status"]["conditions"]}
        assert conditions.get("Established") == "True", conditions
        assert conditions.get("NonStructuralSchema", "False") == "False", conditions


def test_kubectl_is_refused_a_run_on_an_unknown_machine(
    real_control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "run.yaml"
    manifest.write_text(
        f"apiVersion: {API_VERSION}\nkind: TaskRun\nmetadata:\n  name: run-huge\n"
        f"spec:\n  taskId: hello-world\n  version: v1\n  image: tasks:v1\n  module: tasks.hello\n"
        f"  machine: huge\n  queue:\n    name: emails\n"
    )
    refused = kubectl(
        real_control_plane.kubeconfig, "create", "-n", namespace, "-f", str(manifest), check=False
    )
    assert refused.returncode != 0
    assert 'spec.machine: Unsupported value: "huge"' in refused.stderr, refused.stderr
    assert all(name in refused.stderr for name in PRESETS), refused.stderr


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"machine": "huge"}, "spec.machine"),
        ({"taskId": "Hello_World"}, "spec.taskId"),
        ({"queue": {"name": "Emails EU"}}, "spec.queue.name"),
        ({"queue": {"name": "emails", "concurrencyLimit": -1}}, "spec.queue.concurrencyLimit"),
        ({"retry": {"maxAttempts": 0}}, "spec.retry.maxAttempts"),
        ({"retry": {"maxAttempts": 101}}, "spec.retry.maxAttempts"),
        ({"retry": {"minTimeoutMs": 5000, "maxTimeoutMs": 1000}}, "spec.retry.maxTimeoutMs"),
        ({"retry": {"minTimeoutMs": 90000}}, "spec.retry.maxTimeoutMs"),
        ({"retry": {"outOfMemory": {"machine": "huge"}}}, "spec.retry.outOfMemory.machine"),
        ({"maxDurationSeconds": 0}, "spec.maxDurationSeconds"),
        ({"ttlSeconds": 0}, "spec.ttlSeconds"),
        ({"tags": ["t"] * 11}, "spec.tags"),
        ({"tags": ["t" * 129]}, "spec.tags[0]"),
        ({"concurrencyKey": "k" * 257}, "spec.concurrencyKey"),
        ({"idempotencyKey": "k" * 1025}, "spec.idempotencyKey"),
        ({"priority": 2**31}, "spec.priority"),
    ],
)
def test_a_bad_run_is_refused_naming_the_field(
    real_control_plane: ControlPlane, namespace: str, change: dict[str, Any], field: str
) -> None:
    spec = {**SPEC, **change}
    if field != "spec.queue.name":  # a queue's name is checked where the manifest is built
        with pytest.raises(ValueError):  # the model holds the same rule
            TaskRunSpec.model_validate(spec)
    answer = _create(real_control_plane.client(), namespace, "run-bad", spec)
    assert field in _refused_fields(answer), answer.text


def test_a_run_without_its_required_fields_is_refused(
    real_control_plane: ControlPlane, namespace: str
) -> None:
    spec = {k: v for k, v in SPEC.items() if k not in ("machine", "queue")}
    fields = _refused_fields(_create(real_control_plane.client(), namespace, "run-bare", spec))
    assert {"spec.machine", "spec.queue"} <= fields


def _statuses(name: str, spec: TaskRunSpec) -> list[tuple[str, Status, Status]]:
    """(what, before, after) for every status write the operator makes."""
    empty = Status()
    writes = [
        ("delayed", empty, waiting(empty, RunPhase.DELAYED, "Delayed", "until later", NOW)),
        ("queued", empty, waiting(empty, RunPhase.QUEUED, "QueueFull", "at its limit", NOW)),
    ]
    executing = start_attempt(name, spec, empty, NOW)
    writes.append(("executing", empty, executing))
    # A wait: the API records it, the operator gives the slot back, the runner asks to go on,
    # the operator resumes the run.
    wait = RunWait(attempt=1, since=NOW, runs=["run-child"], run_count=1, waiting_for="run-child")
    asked = executing.model_copy(update={"wait": wait})
    held = released(asked, NOW)
    again = held.model_copy(update={"wait": wait.model_copy(update={"resume_requested_at": NOW})})
    writes += [
        ("wait recorded", executing, asked),
        ("waiting", asked, held),
        ("resume asked", held, again),
        ("resumed", again, resumed(again, NOW + timedelta(seconds=2))),
    ]
    error = RunError(type="ValueError", message="no <good>" * 2000, stack="trace\n" * 10_000)
    # Each outcome on an attempt that may be retried, and on the last one.
    last = spec.model_copy(update={"retry": spec.retry.model_copy(update={"max_attempts": 1})})
    for of in (spec, last):
        for outcome in AttemptKind:
            result = ClassifiedAttempt(
                outcome,
                exit_code=0 if outcome is AttemptKind.SUCCEEDED else 1,
                reason=outcome.value,
                error=None if outcome is AttemptKind.SUCCEEDED else error,
                output={"ok": True, "nothing": None} if outcome is AttemptKind.SUCCEEDED else None,
            )
            ended = end_attempt(of, executing, result, NOW + timedelta(seconds=3)).status
            writes.append((f"attempt {outcome.value}", executing, ended))
    for phase, reason in (
        (RunPhase.CANCELED, "Canceled"),
        (RunPhase.EXPIRED, "Expired"),
        (RunPhase.TIMED_OUT, "TimedOut"),
        (RunPhase.SYSTEM_FAILURE, "InvalidTaskRun"),
    ):
        done = finished(executing, phase, NOW, reason=reason, message="ended", error=error)
        writes.append((f"finished {phase.value}", executing, done))
    return writes


def test_every_status_the_operator_writes_is_accepted(
    real_control_plane: ControlPlane, namespace: str
) -> None:
    client = real_control_plane.client()
    spec = TaskRunSpec.model_validate(SPEC)
    phases: set[str] = set()
    for index, (what, before, after) in enumerate(_statuses("run-status", spec)):
        name = f"run-status-{index}"
        assert _create(client, namespace, name, SPEC).status_code == 201
        read = None
        for old, new in ((Status(), before), (before, after)):
            patch = status_patch(read, old, new)
            if not patch:
                continue
            answer = client.patch(
                f"{_runs(namespace)}/{name}/status",
                json=patch,
                headers={"Content-Type": "application/json-patch+json"},
            )
            assert answer.status_code == 200, (what, answer.text)
            read = answer.json()["status"]
        stored = Status.model_validate(answer.json()["status"])
        assert stored == after, what
        phases.add(str(stored.phase))
    assert phases == {phase.value for phase in RunPhase}


def test_a_bogus_phase_is_refused(real_control_plane: ControlPlane, namespace: str) -> None:
    client = real_control_plane.client()
    assert _create(client, namespace, "run-bogus", SPEC).status_code == 201
    answer = client.patch(
        f"{_runs(namespace)}/run-bogus/status",
        json={"status": {"phase": "Done", "attempts": [{"number": 0, "pod": "p", "machine": "x"}]}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    fields = _refused_fields(answer)
    assert {"status.phase", "status.attempts[0].number", "status.attempts[0].machine"} <= fields
