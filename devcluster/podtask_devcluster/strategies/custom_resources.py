"""Custom resources' registry strategy, as apiextensions-apiserver's: decoding prunes,
drops nulls and defaults by the CRD's structural schema; create, update and /status writes
are validated against it and its CEL rules (`podtask_devcluster.custom_resources`);
metadata.generation is kept; an update must name the resourceVersion it replaces."""

from __future__ import annotations

from typing import ClassVar

from podtask_devcluster import custom_resources
from podtask_devcluster.custom_resources import FieldValidation
from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.store import JsonObject
from podtask_devcluster.strategies.base import Strategy


class CustomResourceStrategy(Strategy):
    has_generation = True
    # apiextensions' AllowUnconditionalUpdate is false.
    allows_unconditional_update: ClassVar[bool] = False

    def decode(self, resource: ResourceType, obj: JsonObject, validation: FieldValidation) -> None:
        custom_resources.decode(resource, obj, validation)

    def validate(self, resource: ResourceType, obj: JsonObject) -> None:
        custom_resources.check(resource, obj["metadata"]["name"], obj, None)

    def validate_update(
        self, resource: ResourceType, obj: JsonObject, old: JsonObject, subresource: str | None
    ) -> None:
        custom_resources.check(resource, old["metadata"]["name"], obj, old, subresource)
