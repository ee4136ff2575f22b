"""The trigger request as the API takes it: `podtask._contract.trigger_request`'s wire model (shared
with the client), plus the checks that need the server's view: the stored size of the
metadata, the machines on offer. Its field types (`Delay`, `IsoTime`, …) are
`podtask._contract.trigger_request`'s. Pure.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from podtask._contract.json_values import JsonValueError, checked_json_text, stored_size
from podtask._contract.limits import MAX_METADATA_BYTES
from podtask._contract.machines import PRESETS
from podtask._contract.trigger_request import WireTriggerOptions, WireTriggerRequest


class TriggerOptions(WireTriggerOptions):
    """The options of one trigger, as Trigger.dev names them (camelCase on the wire)."""

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        try:
            size = stored_size(checked_json_text(metadata))
        except JsonValueError as exc:
            raise ValueError(str(exc.problem.at("metadata"))) from None
        if size > MAX_METADATA_BYTES:
            raise ValueError(
                f"the metadata is {size} bytes of JSON, over the limit of {MAX_METADATA_BYTES} "
                f"bytes ({MAX_METADATA_BYTES // 1024} KiB); keep large data in the payload"
            )
        return metadata

    @field_validator("machine")
    @classmethod
    def _known_machine(cls, machine: str | None) -> str | None:
        if machine is not None and machine not in PRESETS:
            raise ValueError(
                f"unknown machine {machine!r}; valid machines are: {', '.join(PRESETS)}"
            )
        return machine


class TriggerRequest(WireTriggerRequest):
    # No docstring: it would become the OpenAPI description of the request.
    options: TriggerOptions = Field(default_factory=TriggerOptions)
