"""The chart rendered offline for several sets of values: every object valid for Kubernetes
1.34 through 1.37 (strict: no unknown fields), Helm's lint silent, and the objects wired to
each other and to the code (selectors, ports, environment variables the settings read)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from podtask._cli.cli_parser import parser
from podtask._control.api_keys import parse_stored_keys
from podtask_api.settings import ApiSettings
from podtask_operator.settings import OperatorSettings
from tests.chart.chart import CHART, NAMESPACE, Rendered, chart_crds, render
from tests.kubernetes_versions import SUPPORTED_KUBERNETES_VERSIONS

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSIONS = SUPPORTED_KUBERNETES_VERSIONS
# Kinds that Kubernetes' own schemas do not describe: checked against their own expectations.
PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cluster-wide": {"rbac": {"clusterWide": True}},
    "existing-secrets": {
        "apiKeys": {"existingSecret": "team-api-keys"},
        "runnerToken": {"existingSecret": "team-runner-token", "secretKey": "hmac"},
    },
    "ingress": {
        "api": {
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "16m"},
                "hosts": [
                    {
                        "host": "tasks.example.com",
                        "paths": [{"path": "/", "pathType": "Prefix"}],
                    }
                ],
                "tls": [{"secretName": "tasks-tls", "hosts": ["tasks.example.com"]}],
            }
        }
    },
    "two-operators": {"operator": {"replicas": 2}, "api": {"replicas": 3}},
    "pdb-networkpolicy-servicemonitor": {
        "podDisruptionBudget": {"enabled": True},
        "networkPolicy": {
            "enabled": True,
            "api": {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                        }
                    },
                    {"podSelector": {"matchLabels": {"podtask.dev/run": "x"}}},
                ]
            },
        },
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    },
    "task-namespace-and-bootstrap-key": {
        "taskNamespace": "tasks",
        "apiKeys": {"bootstrap": "pt_bootstrap_key"},
    },
    "lone-operator-without-election": {"operator": {"leaderElection": {"enabled": False}}},
    "tuned": {
        "image": {"repository": "registry.example.com/podtask", "tag": "1.2.3"},
        "imagePullSecrets": [{"name": "regcred"}],
        "runner": {"image": "registry.example.com/runner:1.2.3", "runAsUser": 2000},
        "machines": {"cpuRequestRatio": 0.5, "memoryRequestRatio": 0.8},
        "queues": {"defaultConcurrencyLimit": 25},
        "retention": {"podSeconds": 600, "runSeconds": 1000000, "housekeepingIntervalSeconds": 30},
        "operator": {
            "extraEnv": [{"name": "PODTASK_WATCH_STALL_SECONDS", "value": "90"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "tasks", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "system-cluster-critical",
        },
        "api": {"service": {"type": "LoadBalancer", "port": 8443}},
    },
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> tuple[str, Rendered]:
    name: str = request.param
    return name, render(VARIANTS[name])


def _service_monitor_problems(obj: dict[str, Any], rendered: Rendered) -> list[str]:
    """What the Prometheus Operator needs of a ServiceMonitor: a selector that picks the
    API's Service, and endpoints naming one of its ports."""
    problems = []
    spec = obj.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    services = [
        s
        for s in rendered.of_kind("Service")
        if selector and selector.items() <= s["metadata"]["labels"].items()
    ]
    if len(services) != 1:
        problems.append(f"selector {selector} picks {len(services)} Services")
    ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    for endpoint in spec.get("endpoints") or [{}]:
        if endpoint.get("port") not in ports:
            problems.append(f"endpoint port {endpoint.get('port')!r} is not one of {ports}")
        if not str(endpoint.get("path", "")).startswith("/"):
            problems.append(f"endpoint path {endpoint.get('path')!r}")
    if set(obj) - {"apiVersion", "kind", "metadata", "spec"}:
        problems.append(f"unexpected fields {set(obj)}")
    return problems


def test_every_object_is_valid_for_each_supported_kubernetes(
    variant: tuple[str, Rendered],
) -> None:
    name, rendered = variant
    checked = 0
    objects = rendered.objects
    assert len(objects) >= 9, name
    for obj in objects:
        if obj["apiVersion"] == PROMETHEUS_OPERATOR:
            assert _service_monitor_problems(obj, rendered) == [], name
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = "/".join(str(p) for p in error.path)
                pytest.fail(
                    f"{name}: {obj['kind']}/{obj['metadata']['name']} is invalid for "
                    f"Kubernetes {version} at {where}: {error.message}"
                )
            checked += 1
    schemaless = [o for o in objects if o["apiVersion"] == PROMETHEUS_OPERATOR]
    assert checked == (len(objects) - len(schemaless)) * len(KUBERNETES_VERSIONS)


def test_the_chart_crds_are_valid_for_every_supported_kubernetes() -> None:
    import yaml

    crds = [yaml.safe_load(text) for text in chart_crds().values()]
    kinds = sorted(c["spec"]["names"]["kind"] for c in crds)
    assert kinds == ["Task", "TaskQueue", "TaskRun", "TaskSchedule"]
    for crd in crds:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(crd, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_helm_lint_reports_nothing(version: str) -> None:
    report = helm.lint(CHART, strict=True, namespace=NAMESPACE, kube_version=f"v{version}")
    assert report["messages"] == [] and report["errors"] == [], report


@pytest.mark.parametrize("name", ["cluster-wide", "pdb-networkpolicy-servicemonitor", "tuned"])
def test_helm_lint_reports_nothing_for_other_values(name: str) -> None:
    report = helm.lint(CHART, VARIANTS[name], strict=True, namespace=NAMESPACE)
    assert report["messages"] == [] and report["errors"] == [], report


def test_which_objects_each_set_of_values_renders() -> None:
    def kinds(values: dict[str, Any]) -> list[str]:
        return sorted(obj["kind"] for obj in render(values).objects)

    assert kinds({}) == [
        "Deployment",
        "Deployment",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Secret",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceAccount",
    ]
    cluster_wide = kinds(VARIANTS["cluster-wide"])
    assert cluster_wide.count("ClusterRole") == 2 and "Role" not in cluster_wide
    assert kinds(VARIANTS["existing-secrets"]).count("Secret") == 0
    assert kinds(VARIANTS["ingress"]).count("Ingress") == 1
    extras = kinds(VARIANTS["pdb-networkpolicy-servicemonitor"])
    assert extras.count("PodDisruptionBudget") == 2
    assert extras.count("NetworkPolicy") == 2
    assert extras.count("ServiceMonitor") == 1
    assert "Role" not in kinds({"rbac": {"create": False}})
    no_accounts = {"operator": {"serviceAccount": {"create": False, "name": "ops"}}}
    assert kinds(no_accounts).count("ServiceAccount") == 1


def _pod_specs(rendered: Rendered) -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in rendered.of_kind("Deployment")]


def test_both_deployments_run_hardened(variant: tuple[str, Rendered]) -> None:
    _, rendered = variant
    for pod in _pod_specs(rendered):
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsNonRoot"] is True
        # The only writable place: an emptyDir on /tmp.
        assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
        assert container["resources"]["requests"] and container["resources"]["limits"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz"
            assert container[probe]["httpGet"]["port"] in ports


def test_one_image_two_commands() -> None:
    rendered = render(VARIANTS["tuned"])
    operator = rendered.one("Deployment", "podtask-operator")["spec"]["template"]["spec"]
    api = rendered.one("Deployment", "podtask-api")["spec"]["template"]["spec"]
    for pod in (operator, api):
        assert pod["containers"][0]["image"] == "registry.example.com/podtask:1.2.3"
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert operator["containers"][0]["command"] == ["python", "-m", "podtask_operator"]
    assert "args" not in operator["containers"][0]
    api_container = api["containers"][0]
    assert [*api_container["command"], *api_container["args"]] == [
        "python",
        "-m",
        "podtask_api",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]
    # By default the tag is the chart's appVersion.
    default = render().one("Deployment", "podtask-api")["spec"]["template"]["spec"]
    assert default["containers"][0]["image"] == "ghcr.io/podtask/podtask:0.1.0"


def test_selectors_pick_their_own_pods(variant: tuple[str, Rendered]) -> None:
    _, rendered = variant
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in rendered.of_kind("Deployment")
    }

    def picked(selector: dict[str, str]) -> list[str]:
        return [name for name, labels in pods.items() if selector.items() <= labels.items()]

    for deployment in rendered.of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert picked(selector) == [deployment["metadata"]["name"]]
    for service in rendered.of_kind("Service"):
        assert picked(service["spec"]["selector"]) == ["podtask-api"]
    for budget in rendered.of_kind("PodDisruptionBudget"):
        assert picked(budget["spec"]["selector"]["matchLabels"]) == [budget["metadata"]["name"]]
    for policy in rendered.of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert picked(selector) == [policy["metadata"]["name"]]


def test_service_ingress_and_network_policy_use_the_api_port() -> None:
    rendered = render(
        {**VARIANTS["ingress"], "networkPolicy": {"enabled": True}, "api": {"port": 9000}}
    )
    container = rendered.one("Deployment", "podtask-api")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert container["args"][-1] == "9000"
    service = rendered.one("Service", "podtask-api")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    policy = rendered.one("NetworkPolicy", "podtask-api")
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]


def _env(rendered: Rendered, deployment: str) -> dict[str, Any]:
    container = rendered.one("Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


def _resolved(rendered: Rendered, deployment: str) -> dict[str, str]:
    resolved = {}
    for name, entry in _env(rendered, deployment).items():
        if "value" in entry:
            resolved[name] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            resolved[name] = rendered.secret_value(ref["name"], ref["key"])
    return resolved


def test_the_operator_reads_every_variable_the_chart_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each PODTASK_* variable is a field of OperatorSettings (a typo would be ignored
    silently), and the settings read from them are the values'."""
    rendered = render(VARIANTS["tuned"])
    env = _resolved(rendered, "podtask-operator")
    fields = {f"PODTASK_{name.upper()}" for name in OperatorSettings.model_fields}
    assert set(env) <= fields, set(env) - fields
    for name in list(os.environ):
        if name.startswith("PODTASK_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    assert settings.namespace == NAMESPACE
    assert settings.api_url == "http://podtask-api.podtask.svc:8443"
    assert len(settings.runner_token_secret) >= 32
    assert settings.cpu_request_ratio == 0.5
    assert settings.memory_request_ratio == 0.8
    assert settings.default_concurrency_limit == 25
    assert settings.run_as_user == 2000
    assert settings.pod_retention_seconds == 600
    assert settings.run_retention_seconds == 1000000
    assert settings.housekeeping_interval_seconds == 30
    assert settings.leader_election is True
    assert settings.lease_name == "podtask-operator"
    assert (settings.lease_duration_seconds, settings.lease_renew_seconds) == (15, 5)
    assert settings.health_port == 8081
    assert settings.watch_stall_seconds == 90  # from operator.extraEnv, which comes last


def test_the_api_reads_every_variable_the_chart_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render({"taskNamespace": "tasks", "apiKeys": {"cacheSeconds": 3}})
    env = _resolved(rendered, "podtask-api")
    fields = {f"PODTASK_{name.upper()}" for name in ApiSettings.model_fields}
    assert set(env) <= fields, set(env) - fields
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = ApiSettings()
    assert settings.namespace == "tasks"
    assert settings.api_keys_secret == "podtask-api-keys"
    assert settings.api_keys_cache_seconds == 3
    # Operator and API share one HMAC secret: both read it from the same Secret key.
    operator_env = _env(rendered, "podtask-operator")["PODTASK_RUNNER_TOKEN_SECRET"]
    assert _env(rendered, "podtask-api")["PODTASK_RUNNER_TOKEN_SECRET"] == operator_env
    assert operator_env["valueFrom"]["secretKeyRef"] == {
        "name": "podtask-runner-token",
        "key": "token",
    }
    assert settings.runner_token_secret.get_secret_value() == rendered.secret_value(
        "podtask-runner-token", "token"
    )


def test_secrets_live_where_they_are_read() -> None:
    rendered = render(VARIANTS["task-namespace-and-bootstrap-key"])
    # The runner token is read by the pods of the release namespace (secretKeyRef)...
    token = rendered.one("Secret", "podtask-runner-token")
    assert token["metadata"]["namespace"] == NAMESPACE
    # ...the API keys by the API, in the task namespace, where `podtask keys` writes them.
    keys = rendered.one("Secret", "podtask-api-keys")
    assert keys["metadata"]["namespace"] == "tasks"
    stored = parse_stored_keys(base64.b64decode(keys["data"]["keys.json"]).decode())
    assert [(k.name, k.sha256, k.read_only) for k in stored] == [
        ("bootstrap", hashlib.sha256(b"pt_bootstrap_key").hexdigest(), False)
    ]
    # Only the digest is stored, never the key.
    assert "pt_bootstrap_key" not in json.dumps(rendered.objects)
    digest = "AB" * 32
    stored = parse_stored_keys(
        render({"apiKeys": {"bootstrapSha256": digest}}).secret_value(
            "podtask-api-keys", "keys.json"
        )
    )
    assert [k.sha256 for k in stored] == [digest.lower()]
    assert render().secret_value("podtask-api-keys", "keys.json") == "[]"


def test_existing_secrets_are_referenced_not_created() -> None:
    rendered = render(VARIANTS["existing-secrets"])
    assert rendered.of_kind("Secret") == []
    ref = _env(rendered, "podtask-operator")["PODTASK_RUNNER_TOKEN_SECRET"]
    assert ref["valueFrom"]["secretKeyRef"] == {"name": "team-runner-token", "key": "hmac"}
    assert _env(rendered, "podtask-api")["PODTASK_API_KEYS_SECRET"]["value"] == "team-api-keys"
    api_role = rendered.one("Role", "podtask-api")
    (secret_rule,) = [r for r in api_role["rules"] if r["resources"] == ["secrets"]]
    assert secret_rule["resourceNames"] == ["team-api-keys"]


def test_a_lone_operator_without_election_never_overlaps_itself() -> None:
    deployment = render(VARIANTS["lone-operator-without-election"]).one(
        "Deployment", "podtask-operator"
    )
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    # With election a rolling update is safe: the new pod stands by until the old one
    # releases the Lease on SIGTERM.
    assert (
        "strategy"
        not in render(VARIANTS["two-operators"]).one("Deployment", "podtask-operator")["spec"]
    )


def api_ports(text: str) -> set[str]:
    """The local ports of `kubectl port-forward svc/…` and of PODTASK_API_URL in `text`."""
    forwards = re.findall(r"port-forward svc/\S+ (\d+):", text)
    assert forwards, text
    return {*forwards, *re.findall(r"PODTASK_API_URL=http://127\.0\.0\.1:(\d+)", text)}


def test_notes_forward_the_api_to_the_port_the_docs_use() -> None:
    # One address for the API on the user's machine, whichever page they follow: the port
    # `podtask dev` serves on by default, so PODTASK_API_URL stays the same.
    dev_port = {str(parser().parse_args(["dev"]).port)}
    assert api_ports(render().notes) == dev_port
    for page in (ROOT / "README.md", ROOT / "docs" / "install.md"):
        assert api_ports(page.read_text()) == dev_port, page.name


def test_notes_show_how_to_reach_the_api_and_trigger_a_run() -> None:
    notes = render().notes
    assert "kubectl -n podtask port-forward svc/podtask-api 8030:80" in notes
    assert "podtask keys create --name admin --namespace podtask" in notes
    assert "curl -s -X POST $PODTASK_API_URL/api/v1/tasks/hello-world/trigger" in notes
    assert "Authorization: Bearer $PODTASK_API_KEY" in notes
    assert "ghcr.io/podtask/runner:0.1.0" in notes  # the image to build task images FROM
    assert "kubectl -n podtask get taskruns" in notes
    notes = render(
        {**VARIANTS["ingress"], "apiKeys": {"bootstrap": "k"}, "taskNamespace": "t"}
    ).notes
    assert "https://tasks.example.com" in notes
    assert "apiKeys.bootstrap" in notes and "keys create --name admin" not in notes
    assert "kubectl -n t get taskruns" in notes
    existing = render(VARIANTS["existing-secrets"]).notes
    assert "--secret team-api-keys" in existing
