"""Nodes' registry strategy: a Node may be created with its status (the node agent registers
itself with its capacity and conditions), which kube's node strategy keeps."""

from __future__ import annotations

from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.store import JsonObject, storage_key
from podtask_devcluster.strategies.base import Strategy

NODES = storage_key("", "nodes")


class NodeStrategy(Strategy):
    def prepare_for_create(self, resource: ResourceType, obj: JsonObject) -> None:
        """The status sent on create is kept."""
