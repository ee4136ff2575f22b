"""Secrets' registry strategy: `stringData` is write-only, folded into base64 `data` on
create and update, as the real API server stores it."""

from __future__ import annotations

import base64

from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.store import JsonObject
from podtask_devcluster.strategies.base import Strategy


class SecretStrategy(Strategy):
    def prepare_for_create(self, resource: ResourceType, obj: JsonObject) -> None:
        super().prepare_for_create(resource, obj)
        _encode_string_data(obj)

    def prepare_for_update(
        self, resource: ResourceType, updated: JsonObject, existing: JsonObject
    ) -> None:
        super().prepare_for_update(resource, updated, existing)
        _encode_string_data(updated)


def _encode_string_data(secret: JsonObject) -> None:
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = secret.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
