"""The chart's RBAC rules are exactly the calls the operator and the API make.

The expected rules are kept here, one line per (API group, resource, verb, resource name),
each with the code that makes the call; the rendered Roles must grant exactly these, with
no wildcard and nothing cluster-scoped (kopf's scanning of namespaces and CRDs is off).
test_chart_cluster.py runs both components against the embedded cluster behind an
RBAC-enforcing proxy, which shows the rules are also enough: nothing is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from tests.chart.chart import NAMESPACE, Rendered, render
from tests.chart.rbac import Attributes, allows, grants_for, request_attributes
from tests.chart.test_chart_render import VARIANTS

Rule = tuple[str, str, str, str | None]  # (apiGroup, resource, verb, resourceName)
LEASE = "podtask-operator"
KEYS_SECRET = "podtask-api-keys"

OPERATOR_RULES: set[Rule] = {
    # kopf's watch of TaskRuns (handlers.taskrun_changed): list, then watch.
    ("podtask.dev", "taskruns", "list", None),
    ("podtask.dev", "taskruns", "watch", None),
    # Cluster.get_run; Cluster.list_runs and HousekeepingClient.list_runs list.
    ("podtask.dev", "taskruns", "get", None),
    # HousekeepingClient.delete_run: finished runs after their retention.
    ("podtask.dev", "taskruns", "delete", None),
    # Cluster.create_run: a schedule's tick's run (schedule_ticker).
    ("podtask.dev", "taskruns", "create", None),
    # kopf's watch of TaskSchedules (handlers.taskschedule_changed).
    ("podtask.dev", "taskschedules", "list", None),
    ("podtask.dev", "taskschedules", "watch", None),
    # Cluster.patch_schedule_status: last and next tick, observed generation, Ready.
    ("podtask.dev", "taskschedules/status", "patch", None),
    # Cluster.get_task: the task whose run a tick triggers.
    ("podtask.dev", "tasks", "get", None),
    # Cluster.patch_run_status: phase, attempts, conditions.
    ("podtask.dev", "taskruns/status", "patch", None),
    # pods._owned_by: the attempt's pod and Secret are owned by the TaskRun with
    # blockOwnerDeletion, which OwnerReferencesPermissionEnforcement allows only with update
    # on taskruns/finalizers (test_chart_owner_references.py, on a real apiserver).
    ("podtask.dev", "taskruns/finalizers", "update", None),
    # kopf's watch of TaskQueues (handlers.taskqueue_changed); Cluster.list_queues.
    ("podtask.dev", "taskqueues", "list", None),
    ("podtask.dev", "taskqueues", "watch", None),
    # Cluster.patch_queue_status: running and queued counts.
    ("podtask.dev", "taskqueues/status", "patch", None),
    # Cluster.create_pod / get_pod / list_pods / delete_pod, kopf's watch of pods
    # (handlers.pod_changed), HousekeepingClient.list_pods / delete_pod.
    ("", "pods", "create", None),
    ("", "pods", "get", None),
    ("", "pods", "list", None),
    ("", "pods", "watch", None),
    ("", "pods", "delete", None),
    # Cluster.create_secret: the attempt's token Secret (reconcile._start_attempt), so the
    # token is never in the pod's spec; AlreadyExists is reused without a read.
    ("", "secrets", "create", None),
    # Cluster.post_event, and kopf's own event posting (settings.posting).
    ("", "events", "create", None),
    # Batch markers: BatchGate reads one (Cluster.get_config_map), kopf watches them
    # (handlers.batch_marker_changed), housekeeping lists them and deletes abandoned ones.
    ("", "configmaps", "get", None),
    ("", "configmaps", "list", None),
    ("", "configmaps", "watch", None),
    ("", "configmaps", "delete", None),
    # kopf's watch of Leases (health.lease_event, the heartbeat); LeaseStore.create.
    ("coordination.k8s.io", "leases", "list", None),
    ("coordination.k8s.io", "leases", "watch", None),
    ("coordination.k8s.io", "leases", "create", None),
    # LeaseStore.read / replace: only the operator's own Lease.
    ("coordination.k8s.io", "leases", "get", LEASE),
    ("coordination.k8s.io", "leases", "update", LEASE),
}

API_RULES: set[Rule] = {
    # KubernetesCluster.get_run / list_runs / create_run / merge_patch_run / delete_run
    # (set_delay_until patches too; a failed batch deletes the runs it created).
    ("podtask.dev", "taskruns", "get", None),
    ("podtask.dev", "taskruns", "list", None),
    ("podtask.dev", "taskruns", "create", None),
    ("podtask.dev", "taskruns", "patch", None),
    ("podtask.dev", "taskruns", "delete", None),
    # KubernetesCluster.runs_version / watch_runs: the one watch of the event streams
    # (run_feed.RunFeed).
    ("podtask.dev", "taskruns", "watch", None),
    # KubernetesCluster.record_report: the runner's report, a JSON patch of the status.
    ("podtask.dev", "taskruns/status", "patch", None),
    # KubernetesCluster.get_task / list_tasks; podtask._control.registration (deployments) lists,
    # creates, patches (JSON patch of the spec) and deletes Tasks.
    ("podtask.dev", "tasks", "get", None),
    ("podtask.dev", "tasks", "list", None),
    # KubernetesCluster.list_tasks_at_version / watch_tasks: the Tasks' catalog of triggers
    # (task_catalog.TaskCatalog).
    ("podtask.dev", "tasks", "watch", None),
    ("podtask.dev", "tasks", "create", None),
    ("podtask.dev", "tasks", "patch", None),
    ("podtask.dev", "tasks", "delete", None),
    # KubernetesCluster.get_queue / list_queues / merge_patch_queue; registration creates, and
    # deletes the queues no longer declared that no unfinished run names (`taskruns` list).
    ("podtask.dev", "taskqueues", "get", None),
    ("podtask.dev", "taskqueues", "list", None),
    ("podtask.dev", "taskqueues", "create", None),
    ("podtask.dev", "taskqueues", "patch", None),
    ("podtask.dev", "taskqueues", "delete", None),
    # podtask._control.registration (deployments): the DECLARATIVE TaskSchedules, listed,
    # created, merge-patched and, once no longer declared, deleted. /api/v1/schedules:
    # KubernetesCluster.get_schedule / list_schedules / create_schedule /
    # merge_patch_schedule / delete_schedule.
    ("podtask.dev", "taskschedules", "get", None),
    ("podtask.dev", "taskschedules", "list", None),
    ("podtask.dev", "taskschedules", "create", None),
    ("podtask.dev", "taskschedules", "patch", None),
    ("podtask.dev", "taskschedules", "delete", None),
    # KubernetesCluster.get_pod / read_pod_log / follow_pod_log.
    ("", "pods", "get", None),
    ("", "pods/log", "get", None),
    # KubernetesCluster.list_events: a run's and its pods' (GET /runs/{id}/kubernetes-events).
    ("", "events", "list", None),
    # DeploymentCluster.records / create_record / delete_record; batch markers:
    # KubernetesCluster.get_config_map / create_config_map / json_patch_config_map (the
    # commit) / delete_config_map (a failed batch withdrawn).
    ("", "configmaps", "get", None),
    ("", "configmaps", "list", None),
    ("", "configmaps", "create", None),
    ("", "configmaps", "patch", None),
    ("", "configmaps", "delete", None),
    # ApiKeySecret.read (auth.api_key_store) and ApiKeySecret.change's replace
    # (api_key_changes: POST and DELETE /api/v1/keys): that one Secret.
    ("", "secrets", "get", KEYS_SECRET),
    ("", "secrets", "update", KEYS_SECRET),
}


def flatten(rules: Iterable[Mapping[str, Any]]) -> set[Rule]:
    flat: set[Rule] = set()
    for rule in rules:
        names = rule.get("resourceNames") or [None]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in names:
                        flat.add((group, resource, verb, name))
    return flat


def _role(rendered: Rendered, kind: str, name: str) -> set[Rule]:
    return flatten(rendered.one(kind, name)["rules"])


def test_the_namespaced_roles_grant_exactly_what_the_code_uses() -> None:
    rendered = render()
    assert _role(rendered, "Role", "podtask-operator") == OPERATOR_RULES
    assert _role(rendered, "Role", "podtask-api") == API_RULES
    assert rendered.of_kind("ClusterRole") == [] and rendered.of_kind("ClusterRoleBinding") == []
    for role in rendered.of_kind("Role"):
        assert role["metadata"]["namespace"] == NAMESPACE


def test_the_cluster_wide_roles_grant_the_same_and_nothing_cluster_scoped() -> None:
    rendered = render(VARIANTS["cluster-wide"])
    assert _role(rendered, "ClusterRole", "podtask-podtask-operator") == OPERATOR_RULES
    assert _role(rendered, "ClusterRole", "podtask-podtask-api") == API_RULES
    assert rendered.of_kind("Role") == [] and rendered.of_kind("RoleBinding") == []


def test_each_role_is_bound_to_its_own_service_account_only() -> None:
    for values, scope in (({}, NAMESPACE), (VARIANTS["cluster-wide"], None)):
        rendered = render(values)
        for account, expected in (("podtask-operator", OPERATOR_RULES), ("podtask-api", API_RULES)):
            grants = grants_for(rendered.objects, NAMESPACE, account)
            assert len(grants) == 1 and grants[0].namespace == scope
            assert flatten(grants[0].rules) == expected
        assert grants_for(rendered.objects, NAMESPACE, "default") == []


def test_a_separate_task_namespace_gets_the_roles() -> None:
    rendered = render({"taskNamespace": "tasks"})
    for role in rendered.of_kind("Role") + rendered.of_kind("RoleBinding"):
        assert role["metadata"]["namespace"] == "tasks"
    (grant,) = grants_for(rendered.objects, NAMESPACE, "podtask-operator")
    assert grant.namespace == "tasks"


def test_names_in_rules_follow_the_values() -> None:
    rendered = render(
        {
            "operator": {"leaderElection": {"leaseName": "tasks-leader"}},
            "apiKeys": {"existingSecret": "team-keys"},
        }
    )
    operator = _role(rendered, "Role", "podtask-operator")
    assert ("coordination.k8s.io", "leases", "update", "tasks-leader") in operator
    api = _role(rendered, "Role", "podtask-api")
    assert {("", "secrets", verb, "team-keys") for verb in ("get", "update")} <= api


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_no_rule_uses_a_wildcard(name: str) -> None:
    for kind in ("Role", "ClusterRole"):
        for role in render(VARIANTS[name]).of_kind(kind):
            for rule in role["rules"]:
                for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert all("*" not in str(v) for v in rule.get(key) or []), (name, rule)


def test_no_rbac_objects_when_disabled() -> None:
    kinds = {obj["kind"] for obj in render({"rbac": {"create": False}}).objects}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


# The authorizer the RBAC proxy enforces with, checked on requests as clients send them.


def _req(method: str, path: str, **query: str) -> Attributes | None:
    return request_attributes(method, path, query)


def test_request_attributes_follow_the_api_servers_rules() -> None:
    assert _req("GET", "/api/v1/namespaces/t/pods") == Attributes("list", "", "pods", "t", None)
    assert _req("GET", "/api/v1/namespaces/t/pods", watch="true") == Attributes(
        "watch", "", "pods", "t", None
    )
    assert _req("GET", "/api/v1/namespaces/t/pods/p-1/log") == Attributes(
        "get", "", "pods/log", "t", "p-1"
    )
    assert _req("PATCH", "/apis/podtask.dev/v1alpha1/namespaces/t/taskruns/r/status") == (
        Attributes("patch", "podtask.dev", "taskruns/status", "t", "r")
    )
    assert _req("POST", "/apis/coordination.k8s.io/v1/namespaces/t/leases") == Attributes(
        "create", "coordination.k8s.io", "leases", "t", None
    )
    assert _req("PUT", "/apis/coordination.k8s.io/v1/namespaces/t/leases/l") == Attributes(
        "update", "coordination.k8s.io", "leases", "t", "l"
    )
    assert _req("DELETE", "/api/v1/namespaces/t/pods") == Attributes(
        "deletecollection", "", "pods", "t", None
    )
    assert _req("GET", "/api/v1/namespaces") == Attributes("list", "", "namespaces", None, None)
    assert _req("GET", "/api/v1/namespaces/t") == Attributes("get", "", "namespaces", None, "t")
    for discovery in ("/api", "/api/v1", "/apis", "/apis/podtask.dev/v1alpha1", "/version"):
        assert _req("GET", discovery) is None


def test_the_authorizer_honours_namespaces_and_resource_names() -> None:
    rendered = render()
    operator = grants_for(rendered.objects, NAMESPACE, "podtask-operator")
    api = grants_for(rendered.objects, NAMESPACE, "podtask-api")
    leases = "/apis/coordination.k8s.io/v1/namespaces"

    def can(grants: Any, method: str, path: str, **query: str) -> bool:
        request = _req(method, path, **query)
        assert request is not None
        return allows(grants, request)

    assert can(operator, "PUT", f"{leases}/podtask/leases/{LEASE}")
    assert not can(operator, "PUT", f"{leases}/podtask/leases/someone-elses")
    assert not can(operator, "GET", f"{leases}/other/leases/{LEASE}")
    assert not can(operator, "GET", "/api/v1/namespaces")
    assert not can(operator, "PATCH", "/apis/podtask.dev/v1alpha1/namespaces/podtask/taskruns/r")
    assert can(api, "GET", f"/api/v1/namespaces/podtask/secrets/{KEYS_SECRET}")
    assert not can(api, "GET", "/api/v1/namespaces/podtask/secrets/podtask-runner-token")
    assert can(api, "PUT", f"/api/v1/namespaces/podtask/secrets/{KEYS_SECRET}")
    assert not can(api, "PUT", "/api/v1/namespaces/podtask/secrets/podtask-runner-token")
    assert not can(api, "POST", "/api/v1/namespaces/podtask/secrets")
    assert not can(api, "GET", "/api/v1/namespaces/podtask/secrets")
    assert not can(api, "GET", "/api/v1/namespaces/podtask/pods", watch="1")
