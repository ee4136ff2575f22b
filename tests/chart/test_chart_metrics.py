"""The chart's monitoring: the ServiceMonitors scrape ports on which the components serve
/metrics (followed from the ServiceMonitor to the Service to the container and to the setting
the component listens by), with an API key unless the metrics are public; the network
policies let the scrape in; the Grafana dashboard queries only metrics podtask serves."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python as helm
import pytest
from prometheus_client import CollectorRegistry

from podtask_api import metrics as api_metrics
from podtask_api.settings import ApiSettings
from podtask_operator import metrics as operator_metrics
from tests.chart.chart import Rendered, render

MONITORED = {
    "serviceMonitor": {"enabled": True, "apiKeySecret": {"name": "podtask-metrics-key"}},
    "operator": {"healthPort": 9102},
    "api": {"port": 9000, "service": {"port": 8080}},
}


def _selected(rendered: Rendered, kind: str, selector: dict[str, str]) -> dict[str, Any]:
    """The one object of `kind` whose labels (a Deployment: its pods') `selector` picks."""

    def labels(obj: dict[str, Any]) -> dict[str, str]:
        if kind == "Deployment":
            return dict(obj["spec"]["template"]["metadata"]["labels"])
        return dict(obj["metadata"]["labels"])

    (picked,) = [o for o in rendered.of_kind(kind) if selector.items() <= labels(o).items()]
    return picked


def _scraped_container_port(rendered: Rendered, monitor: dict[str, Any]) -> tuple[str, int]:
    """The Deployment and the container port a ServiceMonitor's one endpoint reaches."""
    service = _selected(rendered, "Service", monitor["spec"]["selector"]["matchLabels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    deployment = _selected(rendered, "Deployment", service["spec"]["selector"])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (target,) = [p for p in container["ports"] if p["name"] == port["targetPort"]]
    return deployment["metadata"]["name"], int(target["containerPort"])


def _env(rendered: Rendered, deployment: str) -> dict[str, str]:
    (container,) = rendered.one("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_the_service_monitors_scrape_the_ports_that_serve_metrics() -> None:
    rendered = render(MONITORED)
    monitors = {m["metadata"]["name"]: m for m in rendered.of_kind("ServiceMonitor")}
    assert set(monitors) == {"podtask-api", "podtask-operator"}
    for monitor in monitors.values():
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == api_metrics.METRICS_PATH == operator_metrics.METRICS_PATH
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["podtask"]}
    # The API listens on its --port: the port the Service's target names.
    deployment, port = _scraped_container_port(rendered, monitors["podtask-api"])
    (api,) = rendered.one("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    assert (deployment, port) == ("podtask-api", 9000)
    assert api["args"][api["args"].index("--port") + 1] == "9000"
    # The operator serves /metrics on its health port (PODTASK_HEALTH_PORT).
    deployment, port = _scraped_container_port(rendered, monitors["podtask-operator"])
    assert (deployment, port) == ("podtask-operator", 9102)
    assert _env(rendered, deployment)["PODTASK_HEALTH_PORT"] == "9102"


def test_the_api_scrape_sends_a_key_unless_metrics_are_public() -> None:
    keyed = render(MONITORED)
    (endpoint,) = keyed.one("ServiceMonitor", "podtask-api")["spec"]["endpoints"]
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "podtask-metrics-key", "key": "key"},
    }
    assert _env(keyed, "podtask-api")["PODTASK_METRICS_PUBLIC"] == "false"
    public = render({**MONITORED, "serviceMonitor": {"enabled": True}, "metrics": {"public": True}})
    (endpoint,) = public.one("ServiceMonitor", "podtask-api")["spec"]["endpoints"]
    assert "authorization" not in endpoint
    value = _env(public, "podtask-api")["PODTASK_METRICS_PUBLIC"]
    assert ApiSettings.model_validate({"metrics_public": value}).metrics_public is True
    # The operator's needs no key, either way.
    (endpoint,) = keyed.one("ServiceMonitor", "podtask-operator")["spec"]["endpoints"]
    assert "authorization" not in endpoint
    # Neither a key nor public metrics: the scrape would get 401s; the install says so.
    with pytest.raises(helm.HelmRenderError, match=r"serviceMonitor\.apiKeySecret\.name"):
        render({"serviceMonitor": {"enabled": True}})


def test_no_monitoring_objects_unless_asked() -> None:
    kinds = [o["kind"] for o in render().objects]
    assert "ServiceMonitor" not in kinds and "ConfigMap" not in kinds
    assert [s["metadata"]["name"] for s in render().of_kind("Service")] == ["podtask-api"]


def test_the_network_policies_let_prometheus_scrape() -> None:
    prometheus = [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    rendered = render(
        {
            **MONITORED,
            "networkPolicy": {
                "enabled": True,
                "api": {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]},
                "prometheus": {"from": prometheus},
            },
        }
    )
    api_rules = rendered.one("NetworkPolicy", "podtask-api")["spec"]["ingress"]
    assert {"ports": [{"port": "http", "protocol": "TCP"}], "from": prometheus} in api_rules
    # The operator's health port (its /metrics too) is open to any peer.
    operator_rules = rendered.one("NetworkPolicy", "podtask-operator")["spec"]["ingress"]
    assert operator_rules == [{"ports": [{"port": "health", "protocol": "TCP"}]}]


def _served_names(registry: CollectorRegistry) -> set[str]:
    """The sample names a registry serves, from its families' types."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def test_the_grafana_dashboard_queries_only_served_metrics() -> None:
    rendered = render(
        {
            "grafanaDashboard": {
                "enabled": True,
                "namespace": "monitoring",
                "annotations": {"grafana_folder": "podtask"},
            }
        }
    )
    config_map = rendered.one("ConfigMap", "podtask-dashboard")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "podtask"}
    dashboard = json.loads(config_map["data"]["podtask.json"])
    assert dashboard["uid"] == "podtask"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace"}
    served = _served_names(api_metrics.REGISTRY) | _served_names(operator_metrics.REGISTRY)
    queried: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            queried |= set(re.findall(r"\bpodtask_\w+", target["expr"]))
    assert queried and queried <= served, queried - served
    # Every metric podtask serves is on it.
    own = {name for name in served if name.startswith("podtask_")}
    shown = {re.sub(r"_(bucket|count|sum)$", "", name) for name in queried}
    assert {re.sub(r"_(bucket|count|sum)$", "", name) for name in own} <= shown
