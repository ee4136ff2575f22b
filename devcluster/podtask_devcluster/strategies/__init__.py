"""Per-kind registry strategies (kube-apiserver's REST strategies): which kind gets which,
and the default for the rest. The registry asks `strategy_for(resource)` and never branches
on a kind itself."""

from __future__ import annotations

from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.store import storage_key
from podtask_devcluster.strategies.base import GenerationStrategy, Strategy
from podtask_devcluster.strategies.crds import CRDS, CrdStrategy
from podtask_devcluster.strategies.custom_resources import CustomResourceStrategy
from podtask_devcluster.strategies.namespaces import NAMESPACES, NamespaceStrategy
from podtask_devcluster.strategies.nodes import NODES, NodeStrategy
from podtask_devcluster.strategies.pods import PODS, PodStrategy
from podtask_devcluster.strategies.secrets import SecretStrategy

__all__ = ["CRDS", "NAMESPACES", "NODES", "PODS", "Strategy", "all_strategies", "strategy_for"]

DEFAULT = Strategy()
CUSTOM_RESOURCES = CustomResourceStrategy()
_BY_STORAGE_KEY: dict[str, Strategy] = {
    PODS: PodStrategy(),
    NAMESPACES: NamespaceStrategy(),
    NODES: NodeStrategy(),
    CRDS: CrdStrategy(),
    storage_key("", "secrets"): SecretStrategy(),
    storage_key("apps", "deployments"): GenerationStrategy(),
}


def strategy_for(resource: ResourceType) -> Strategy:
    if resource.is_custom:
        return CUSTOM_RESOURCES
    return _BY_STORAGE_KEY.get(resource.storage_key, DEFAULT)


def all_strategies() -> tuple[Strategy, ...]:
    """Every strategy with something of its own, in the order they bootstrap (CRDs first:
    the resources they serve exist before anything else is read)."""
    return (_BY_STORAGE_KEY[CRDS], *(s for k, s in _BY_STORAGE_KEY.items() if k != CRDS))
