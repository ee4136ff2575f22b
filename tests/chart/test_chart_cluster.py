"""The chart on a cluster (the embedded one, then a real one; real kubectl on both).

Its CRDs and rendered objects apply with `kubectl apply`; then the operator and the API run
as the rendered Deployments say (command, args, environment with the Secret's values), each
held to its ServiceAccount's rendered RBAC by an enforcing proxy, and together they deploy a
task and complete a run. An upgrade, rendered against the cluster, keeps the runner token
and the API keys added since the install.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from podtask._authoring.manifest import load_manifest
from podtask._cli.dev import free_port
from tests.chart.chart import CHART, ROOT, Rendered, render, render_in_cluster
from tests.chart.conftest import ChartCluster, Kubectl, audited
from tests.chart.deployed import DeployedProcess, wait_until
from tests.chart.rbac import RbacProxy, grants_for
from tests.real_cluster import RealCluster

NAMESPACE = "podtask"
API_KEY = "pt_chart_test_key_0123456789"
TASK_IMAGE = "registry.example.com/podtask-examples:1"
SCHEDULE = {
    "apiVersion": "podtask.dev/v1alpha1",
    "kind": "TaskSchedule",
    "metadata": {"name": "minutely"},
    "spec": {"taskId": "hello-world", "cron": "* * * * *"},
}
# A node selector that no node matches.
NO_NODE = {"podtask.dev/test-no-node": "none"}
FINAL = {"Completed", "Failed", "Crashed", "Canceled", "Expired", "TimedOut", "SystemFailure"}


def _applied(kubectl: Kubectl, path: Path, namespace: str | None = None) -> list[str]:
    args = ["apply", "-f", str(path)] + (["-n", namespace] if namespace else [])
    return kubectl(*args).stdout.splitlines()


@pytest.fixture(scope="module")
def installed(
    chart_cluster: ChartCluster, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Rendered, list[str]]]:
    """`kubectl create namespace` + the chart's CRDs + its objects, as `helm template | kubectl
    apply` would install them; ports and the API's address are the only values set for this
    machine (both processes run on it instead of in pods).

    A real cluster's controllers would run the Deployments' own pods, and this machine's node
    runs a pod as a process in the machine's network namespace, not in one of its own: those
    pods would bind the same ports as the test's processes (the operator's, crash-looping
    without credentials, now and then first). So no node is selected for them: they stay
    Pending, as they would on a cluster with no node for them."""
    api_port, health_port = free_port(), free_port()
    rendered = render(
        {
            "apiKeys": {"bootstrap": API_KEY, "cacheSeconds": 0},
            "api": {
                "port": api_port,
                "internalUrl": f"http://127.0.0.1:{api_port}",
                "nodeSelector": NO_NODE,
            },
            "operator": {"healthPort": health_port, "nodeSelector": NO_NODE},
            # Short, so that the test sees housekeeping delete a pod and a run.
            "retention": {"podSeconds": 4, "runSeconds": 6, "housekeepingIntervalSeconds": 0.5},
        },
        namespace=NAMESPACE,
    )
    kubectl("create", "namespace", NAMESPACE)
    out = _applied(kubectl, CHART / "crds")
    out += _applied(kubectl, rendered.write(tmp_path_factory.mktemp("chart") / "podtask.yaml"))
    if isinstance(chart_cluster, RealCluster):
        wait_until(
            lambda: _unschedulable_pods(kubectl) == {"api", "operator"},
            60,
            lambda: f"the chart's own pods are not all left unscheduled: {_pod_phases(kubectl)}",
        )
    yield rendered, out


def _pods_of_the_chart(kubectl: Kubectl) -> list[dict[str, Any]]:
    listed = kubectl(
        "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=podtask", "-o", "json"
    ).stdout
    pods: list[dict[str, Any]] = json.loads(listed)["items"]
    return pods


def _unschedulable_pods(kubectl: Kubectl) -> set[str]:
    """The components whose pods the scheduler found no node for (and none of theirs runs)."""
    pods = _pods_of_the_chart(kubectl)
    unscheduled = {
        pod["metadata"]["labels"]["app.kubernetes.io/component"]
        for pod in pods
        if any(
            c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
            for c in pod.get("status", {}).get("conditions", [])
        )
    }
    placed = {
        pod["metadata"]["labels"]["app.kubernetes.io/component"]
        for pod in pods
        if pod["spec"].get("nodeName")
    }
    return unscheduled - placed


def _pod_phases(kubectl: Kubectl) -> dict[str, Any]:
    return {
        pod["metadata"]["name"]: (pod["spec"].get("nodeName"), pod.get("status", {}).get("phase"))
        for pod in _pods_of_the_chart(kubectl)
    }


def test_the_crds_and_every_object_apply_with_kubectl(
    installed: tuple[Rendered, list[str]], kubectl: Kubectl
) -> None:
    rendered, out = installed
    kinds = ("taskruns", "taskqueues", "tasks", "taskschedules")
    for kind in kinds:
        assert f"customresourcedefinition.apiextensions.k8s.io/{kind}.podtask.dev created" in out
    created = [line for line in out if line.endswith(" created")]
    assert len(created) == len(kinds) + len(rendered.objects)
    listed = kubectl(
        "get",
        "deployments,services,serviceaccounts,secrets,roles,rolebindings",
        "-n",
        NAMESPACE,
        "-o",
        "name",
    ).stdout.split()
    for obj in rendered.objects:
        group = obj["apiVersion"].rpartition("/")[0]
        kind = obj["kind"].lower() + (f".{group}" if group else "")
        assert f"{kind}/{obj['metadata']['name']}" in listed, listed


def _start(
    stack: ExitStack, rendered: Rendered, component: str, cluster: ChartCluster, state: Path
) -> tuple[DeployedProcess, RbacProxy | None]:
    deployment = rendered.one("Deployment", f"podtask-{component}")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    proxy = None
    kube: str | Path
    if isinstance(cluster, RealCluster):
        token = cluster.control_plane.service_account_token(NAMESPACE, account)
        kube = cluster.control_plane.kubeconfig_for_token(
            token, state / f"{account}.kubeconfig", NAMESPACE
        )
    else:
        proxy = RbacProxy(
            cluster.url,
            grants_for(rendered.objects, NAMESPACE, account),
            f"system:serviceaccount:{NAMESPACE}:{account}",
        )
        stack.enter_context(proxy)
        kube = proxy.url
    process = DeployedProcess(deployment, rendered, kube, state)
    stack.callback(process.stop)
    process.start().wait_ready()
    return process, proxy


def _run(http: httpx.Client, run_id: str) -> dict[str, Any]:
    response = http.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_the_operator_and_api_of_the_chart_complete_a_run_within_their_rbac(
    installed: tuple[Rendered, list[str]],
    chart_cluster: ChartCluster,
    kubectl: Kubectl,
    tmp_path: Path,
) -> None:
    rendered, _ = installed
    with ExitStack() as stack:
        api, api_rbac = _start(stack, rendered, "api", chart_cluster, tmp_path)
        operator, operator_rbac = _start(stack, rendered, "operator", chart_cluster, tmp_path)
        assert operator.probe("livenessProbe") == 200 and api.probe("livenessProbe") == 200

        def logs() -> str:
            return f"operator:\n{operator.output()[-3000:]}\napi:\n{api.output()[-3000:]}"

        port = next(p["containerPort"] for p in api.container["ports"] if p["name"] == "http")
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1", headers=headers, timeout=30
        ) as http:
            # What `podtask deploy` sends: the examples' manifest with its task image.
            manifest = load_manifest([str(ROOT / "examples" / "hello_world.py")]).to_wire()
            deployed = http.post("/deployments", json={"image": TASK_IMAGE, "manifest": manifest})
            assert deployed.status_code == 201, deployed.text
            # A schedule of the task, whose first tick comes within a minute.
            schedule = tmp_path / "schedule.json"
            schedule.write_text(json.dumps(SCHEDULE))
            kubectl("apply", "-n", NAMESPACE, "-f", str(schedule))
            triggered = http.post("/tasks/hello-world/trigger", json={"payload": {"name": "chart"}})
            assert triggered.status_code in (200, 201), triggered.text
            run_id = triggered.json()["id"]
            run = wait_until(lambda: (r := _run(http, run_id))["status"] in FINAL and r, 60, logs)
            assert run["status"] == "Completed", (run, logs())
            assert run["output"] == {"message": "hello chart"}

            # The attempt's pod as kubectl shows it: the task's image, sized by the ratios.
            pod = json.loads(
                kubectl("get", "pod", f"{run_id}-1", "-n", NAMESPACE, "-o", "json").stdout
            )
            (container,) = pod["spec"]["containers"]
            assert container["image"] == TASK_IMAGE
            assert container["resources"]["requests"] == {"cpu": "375m", "memory": "512Mi"}
            # The API's other reads and writes, each under its Role: the log, the run list,
            # a queue paused and resumed, a second deployment (the Tasks patched).
            log = http.get(f"/runs/{run_id}/logs")
            assert log.status_code == 200 and "Hello, chart!" in log.text, log.text
            assert run_id in {r["id"] for r in http.get("/runs").json()["data"]}
            events = http.get(f"/runs/{run_id}/kubernetes-events")
            assert events.status_code == 200, events.text
            about = {e["object"]["name"] for e in events.json()["data"]}
            assert about & {run_id, f"{run_id}-1"}, events.json()
            for action in ("pause", "resume"):
                changed = http.post(f"/queues/hello-world/{action}")
                assert changed.status_code == 200, changed.text
            again = http.post(
                "/deployments",
                json={"image": TASK_IMAGE, "manifest": manifest, "version": "chart.2"},
            )
            assert again.status_code == 201, again.text
            # A schedule of the task: created, listed, deactivated, deleted (TaskSchedules).
            made = http.post("/schedules", json={"task": "hello-world", "cron": "@daily"})
            assert made.status_code == 201, made.text
            schedule_id = made.json()["id"]
            listed = http.get("/schedules", params={"task": "hello-world"}).json()["data"]
            assert schedule_id in {s["id"] for s in listed}
            for method, path in (("POST", "/deactivate"), ("DELETE", "")):
                changed = http.request(method, f"/schedules/{schedule_id}{path}")
                assert changed.status_code == 200, changed.text

        # Housekeeping, within the operator's Role: the finished pod goes after
        # retention.podSeconds, the run after retention.runSeconds.
        def gone(kind: str, name: str) -> bool:
            found = kubectl("get", kind, name, "-n", NAMESPACE, check=False)
            return found.returncode != 0 and "NotFound" in found.stderr

        wait_until(lambda: gone("pod", f"{run_id}-1"), 30, logs)
        wait_until(lambda: gone("taskrun", run_id), 30, logs)

        # The schedule's tick, within the operator's Role: the Task read, the run created,
        # the schedule's status written.
        def ticked() -> bool:
            found = kubectl("get", "taskschedule", "minutely", "-n", NAMESPACE, "-o", "json")
            return bool((json.loads(found.stdout).get("status") or {}).get("lastRunId"))

        wait_until(ticked, 120, logs)
        lease = json.loads(
            kubectl("get", "lease", "podtask-operator", "-n", NAMESPACE, "-o", "json").stdout
        )
        assert lease["spec"]["holderIdentity"]

    # Everything either component asked for was granted by its Role: none of it was refused,
    # none of it was outside the task namespace, and neither logged an error.
    assert " ERROR " not in operator.output() and "ERROR " not in api.output(), logs()
    if isinstance(chart_cluster, RealCluster):
        seen = _audited_requests(chart_cluster)
        for account in ("podtask-api", "podtask-operator"):
            assert seen[account], f"no request of {account} reached the apiserver"
            # RBAC's answers; a 429 (a CRD's storage still starting) is retried by the client.
            refused = [r for r in seen[account] if r["code"] in (401, 403)]
            assert refused == [], (account, refused)
            # Discovery (/api, /apis/…) names no object; everything else stays in the namespace.
            outside = {
                r["uri"] for r in seen[account] if r["resource"] and r["namespace"] != NAMESPACE
            }
            assert outside == set(), (account, outside)
        operator_used = {(r["verb"], r["resource"]) for r in seen["podtask-operator"]}
        api_used = {(r["verb"], r["resource"]) for r in seen["podtask-api"]}
    else:
        assert api_rbac is not None and operator_rbac is not None
        for proxy in (api_rbac, operator_rbac):
            assert [str(r) for r in proxy.denied()] == [], logs()
            assert {d.request.namespace for d in proxy.seen()} == {NAMESPACE}
        operator_used = {(d.request.verb, d.request.resource) for d in operator_rbac.seen()}
        api_used = {(d.request.verb, d.request.resource) for d in api_rbac.seen()}
    assert {
        ("create", "pods"),
        ("patch", "taskruns/status"),
        ("update", "leases"),
        ("delete", "pods"),
        ("delete", "taskruns"),
        ("watch", "taskschedules"),
        ("get", "tasks"),
        ("create", "taskruns"),
        ("patch", "taskschedules/status"),
    } <= operator_used
    assert {
        ("get", "secrets"),
        ("create", "taskruns"),
        ("create", "configmaps"),
        ("get", "pods/log"),
        ("list", "events"),
        ("patch", "taskqueues"),
        ("patch", "tasks"),
        ("create", "taskschedules"),
        ("patch", "taskschedules"),
        ("delete", "taskschedules"),
    } <= api_used


def _audited_requests(cluster: RealCluster) -> dict[str, list[dict[str, Any]]]:
    """Each chart ServiceAccount's requests, from the apiserver's audit log: verb, resource
    (with its subresource), namespace and status code."""
    by_account: dict[str, list[dict[str, Any]]] = {"podtask-api": [], "podtask-operator": []}
    for event in audited(cluster):
        if event.get("stage") != "ResponseComplete":
            continue
        user = event["user"]["username"]
        prefix = f"system:serviceaccount:{NAMESPACE}:"
        account = user.removeprefix(prefix)
        if not user.startswith(prefix) or account not in by_account:
            continue
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "") + (
            f"/{ref['subresource']}" if ref.get("subresource") else ""
        )
        by_account[account].append(
            {
                "verb": event["verb"],
                "resource": resource,
                "namespace": ref.get("namespace", ""),
                "code": event.get("responseStatus", {}).get("code", 0),
                "uri": event["requestURI"],
            }
        )
    return by_account


def test_an_upgrade_keeps_the_runner_token_and_the_keys_added_since(
    chart_cluster: ChartCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    namespace = "podtask-upgrade"
    kubeconfig = chart_cluster.kubeconfig_path
    kubectl("create", "namespace", namespace)
    first = render_in_cluster(
        kubeconfig, {"apiKeys": {"bootstrap": "pt_first"}}, namespace=namespace
    )
    _applied(kubectl, first.write(tmp_path / "first.yaml"))
    token = first.secret_value("podtask-runner-token", "token")
    assert len(token) == 64

    # A key added the documented way, by the real CLI, into the chart's Secret.
    created = subprocess.run(
        [
            *(str(Path(sys.executable).parent / "podtask"), "keys", "create", "--name", "ci"),
            *("--namespace", namespace, "--kubeconfig", str(kubeconfig)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    ci_digest = hashlib.sha256(created.stdout.strip().encode()).hexdigest()

    def keys(rendered: Rendered) -> dict[str, str]:
        stored = json.loads(rendered.secret_value("podtask-api-keys", "keys.json"))
        return {key["name"]: key["sha256"] for key in stored}

    second = render_in_cluster(kubeconfig, {}, namespace=namespace, upgrade=True)
    assert second.secret_value("podtask-runner-token", "token") == token
    assert keys(second) == {
        "bootstrap": hashlib.sha256(b"pt_first").hexdigest(),
        "ci": ci_digest,
    }
    _applied(kubectl, second.write(tmp_path / "second.yaml"))

    third = render_in_cluster(
        kubeconfig, {"apiKeys": {"bootstrap": "pt_second"}}, namespace=namespace, upgrade=True
    )
    assert third.secret_value("podtask-runner-token", "token") == token
    assert keys(third) == {"ci": ci_digest, "bootstrap": hashlib.sha256(b"pt_second").hexdigest()}
    # Offline (helm template) nothing can be looked up: a fresh token every time.
    assert render(namespace=namespace).secret_value("podtask-runner-token", "token") != token
