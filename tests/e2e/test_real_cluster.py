"""What only a real cluster does to a run (the issue's Acceptance 3), on the real control
plane: a scheduler that finds no node, a node without the task's image, a pod whose Secret
does not exist, a node that is lost and comes back, a ResourceQuota that holds pods back.

One stack for the module: the operator's pending timeout is 20 s and its image pull timeout
5 s; the node has the dev image only; the node controller takes a node that stopped
heartbeating for 25 s as not ready (the default is 50 s).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podtask._cli.dev import DEV_IMAGE
from tests.clusters import CLUSTERS
from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import TASK_MODULES, at, wait_until
from tests.reliability.ledger import Ledger

pytestmark = pytest.mark.skipif("real" not in CLUSTERS, reason="the real control plane only")

LEDGER_TASKS = Path(__file__).parents[1] / "reliability" / "task_modules" / "ledger_tasks.py"
PENDING_TIMEOUT = 20
OTHER_IMAGE = "registry.example.com/team/elsewhere:1"
# A cluster policy (MutatingAdmissionPolicy, GA since 1.36) that gives the pods of one task
# an environment variable from a Secret nobody created: what a platform team's policy does
# before its Secret is rolled out. podtask itself names no Secret but the attempt's token,
# which it creates first; this makes the missing Secret deterministic.
MISSING_SECRET_POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata:
  name: inject-database-password
spec:
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["CREATE"]
        resources: ["pods"]
    objectSelector:
      matchLabels:
        podtask.dev/task: needs-config
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
    - patchType: JSONPatch
      jsonPatch:
        expression: >
          [JSONPatch{op: "add", path: "/spec/containers/0/env/-",
            value: Object.spec.containers.env{name: "DATABASE_PASSWORD",
              valueFrom: Object.spec.containers.env.valueFrom{
                secretKeyRef: Object.spec.containers.env.valueFrom.secretKeyRef{
                  name: "database", key: "password"}}}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata:
  name: inject-database-password
spec:
  policyName: inject-database-password
"""
POD_QUOTA = """
apiVersion: v1
kind: ResourceQuota
metadata:
  name: two-pods
spec:
  hard:
    pods: "2"
"""


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposedStack]:
    stack = ComposedStack(
        tmp_path_factory.mktemp("real-cluster"),
        [str(TASK_MODULES / "real_cluster.py"), str(LEDGER_TASKS)],
        operator_env={
            "PODTASK_PENDING_TIMEOUT_SECONDS": str(PENDING_TIMEOUT),
            "PODTASK_IMAGE_PULL_TIMEOUT_SECONDS": "5",
        },
        cluster_kind="real",
        node_env={"PODTASK_NODE_IMAGES": DEV_IMAGE},
        component_args={"kube-controller-manager": ["--node-monitor-grace-period=25s"]},
    )
    stack.start()
    try:
        # The whole stack works (operator leading, node running pods) before any test counts
        # seconds: a first start on a busy machine takes a while.
        warm_up = stack.wait_for(stack.trigger("quota-bound", {"seconds": 0}), timeout=180)
        assert warm_up["status"] == "Completed", warm_up
        yield stack
    finally:
        stack.stop()


def apply(composed: ComposedStack, manifest: str) -> None:
    composed.kubectl("apply", "-f", "-", stdin=manifest)


def condition(run: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in run.get("conditions") or [] if c["type"] == type_), None)


def events_of(composed: ComposedStack, run_id: str) -> list[dict[str, Any]]:
    listed = composed.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={run_id}", "-o", "json"
    )
    return list(json.loads(listed)["items"])


def test_a_machine_no_node_fits_says_so_then_ends_unschedulable_and_is_retried(
    composed: ComposedStack,
) -> None:
    run_id = composed.trigger("too-big", {})

    # At once (within 10 s): the scheduler's own reason, as a condition and an Event.
    def stalled() -> dict[str, Any] | None:
        found = condition(composed.run(run_id), "Stalled")
        return found if found and found["reason"] == "Unschedulable" else None

    said = wait_until(stalled, timeout=10)
    assert said["message"].startswith("machine large-2x needs 8 CPU / 16Gi (requests 6 CPU")
    assert "no node fits" in said["message"]
    assert "0/1 nodes are available" in said["message"]
    assert "Insufficient cpu" in said["message"]
    assert any(e["reason"] == "Unschedulable" for e in events_of(composed, run_id))
    described = composed.kubectl("describe", "taskrun", run_id)
    assert "Unschedulable" in described and "no node fits" in described

    # After the pending timeout the attempt ends Unschedulable, a system failure: retried
    # per the task's policy (2 attempts), then the run ends.
    run = composed.wait_for(run_id, timeout=4 * PENDING_TIMEOUT + 60)
    assert run["status"] == "SystemFailure"
    assert [a["reason"] for a in run["attempts"]] == ["Unschedulable", "Unschedulable"]
    for attempt in run["attempts"]:
        waited = (at(attempt["finishedAt"]) - at(attempt["startedAt"])).total_seconds()
        assert waited >= PENDING_TIMEOUT - 1, attempt
    assert run["error"]["type"] == "Unschedulable"
    assert "no node fits" in run["error"]["message"]
    # The slot is free and nothing of it is left on the cluster.
    wait_until(
        lambda: (
            not any(
                p["metadata"]["name"].startswith(run_id)
                for p in composed.cluster.objects("pods", namespace="default")
            )
        ),
        timeout=60,
    )


def test_an_image_the_node_does_not_have_ends_image_pull_failed(composed: ComposedStack) -> None:
    # Deployed in another image (as `podtask deploy --image` would register it).
    composed.kubectl(
        "patch",
        "task",
        "elsewhere",
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"image": OTHER_IMAGE}}),
    )
    run_id = composed.trigger("elsewhere", {})

    def stalled() -> dict[str, Any] | None:
        found = condition(composed.run(run_id), "Stalled")
        return found if found and found["reason"] == "ImagePullFailed" else None

    said = wait_until(stalled, timeout=60)
    assert OTHER_IMAGE in said["message"]
    run = composed.wait_for(run_id, timeout=PENDING_TIMEOUT + 60)
    assert run["status"] == "SystemFailure"
    assert [a["reason"] for a in run["attempts"]] == ["ImagePullFailed"]
    assert run["error"]["type"] == "ImagePullFailed"
    assert OTHER_IMAGE in run["error"]["message"]
    assert any(e["reason"] == "ImagePullFailed" for e in events_of(composed, run_id))


def test_a_pod_whose_secret_is_missing_ends_container_config_error(
    composed: ComposedStack,
) -> None:
    apply(composed, MISSING_SECRET_POLICY)

    # The apiserver applies a new policy a moment after it is stored: a dry run shows when.
    probe = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probe", "labels": {"podtask.dev/task": "needs-config"}},
            "spec": {
                "containers": [
                    {"name": "task", "image": DEV_IMAGE, "env": [{"name": "A", "value": "b"}]}
                ]
            },
        }
    )

    def policy_applies() -> bool:
        done = composed.kubectl_run(
            "create", "--dry-run=server", "-o", "json", "-f", "-", stdin=probe
        )
        return done.returncode == 0 and "DATABASE_PASSWORD" in done.stdout

    wait_until(policy_applies, timeout=60, interval=0.5)
    run_id = composed.trigger("needs-config", {})

    def stalled() -> dict[str, Any] | None:
        found = condition(composed.run(run_id), "Stalled")
        return found if found and found["reason"] == "ContainerConfigError" else None

    said = wait_until(stalled, timeout=60)
    assert 'secret "database" not found' in said["message"]
    run = composed.wait_for(run_id, timeout=PENDING_TIMEOUT + 60)
    assert run["status"] == "SystemFailure"
    assert [a["reason"] for a in run["attempts"]] == ["ContainerConfigError"]
    assert run["error"]["type"] == "ContainerConfigError"
    assert "CreateContainerConfigError" in run["error"]["message"]


def test_runs_on_a_lost_node_are_retried_once_it_is_back_and_none_is_lost(
    composed: ComposedStack, tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path / "ledger")
    # Long enough that every run is executing when the node goes away.
    ids = [
        composed.trigger("ledger-retried", ledger.payload(i=i, seconds=[30, 30])) for i in range(4)
    ]
    wait_until(lambda: len(ledger.count("start")) == len(ids), timeout=120)

    composed.real.stop_node_agent(signal.SIGKILL)
    try:
        # The node controller stops hearing from the node: its pods are not ready, which the
        # runs say (the attempt may yet go on, should the node come back).
        wait_until(lambda: composed.real.node_condition() == "Unknown", timeout=120)

        def not_ready() -> bool:
            return any(
                (c := condition(composed.run(run_id), "Stalled")) is not None
                and c["reason"] == "NodeNotReady"
                for run_id in ids
            )

        wait_until(not_ready, timeout=60, interval=0.5)
    finally:
        composed.real.start_node_agent()

    runs = composed.wait_all(ids, timeout=300)
    assert {r["status"]["phase"] for r in runs.values()} == {"Completed"}
    for run in runs.values():
        attempts = run["status"]["attempts"]
        assert attempts[0]["reason"] == "NodeLost", attempts
        assert attempts[-1]["reason"] == "Completed"
    # Nothing lost, nothing done twice: every run returned from its last attempt, once.
    ledger.assert_no_attempt_started_twice()
    ledger.assert_not_executed_after_success(runs)
    ledger.assert_completions_returned(runs)
    ledger.assert_each_returned_once(ids)


def test_a_quota_of_two_pods_holds_runs_back_and_all_complete(composed: ComposedStack) -> None:
    apply(composed, POD_QUOTA)
    try:
        ids = composed.batch("quota-bound", [{"i": i, "seconds": 2} for i in range(6)])

        def waiting_for_quota() -> bool:
            return any(
                (c := condition(composed.run(run_id), "Waiting")) is not None
                and c["reason"] == "QuotaExceeded"
                for run_id in ids
            )

        wait_until(waiting_for_quota, timeout=60, interval=0.3)
        runs = composed.wait_all(ids, timeout=300)
    finally:
        composed.kubectl("delete", "resourcequota", "two-pods")
    assert {r["status"]["phase"] for r in runs.values()} == {"Completed"}
    # Each run's one attempt: waiting for the quota cost no attempt.
    assert all(len(r["status"]["attempts"]) == 1 for r in runs.values())
    # One pod per run (the queue's others are the module's warm-up run). How many ran at once
    # is the apiserver's to hold to the quota, not podtask's, and it is not strict:
    # kube-controller-manager recounts the quota's usage from its informer's pods, and a
    # recount made before it saw a pod just created lets one more in
    # (kubernetes/kubernetes#123434). This test once saw three pods of the queue at once.
    created = [c.run for c in composed.created_in("quota-bound") if c.run in ids]
    assert sorted(created) == sorted(ids)
    quota_events = [e for run_id in ids for e in events_of(composed, run_id)]
    assert any(e["reason"] == "QuotaExceeded" for e in quota_events)
    assert any("exceeded quota: two-pods" in e["message"] for e in quota_events)
