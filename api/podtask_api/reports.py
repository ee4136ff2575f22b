"""The runner's completion report: its request shape and the `AttemptReport` it becomes.

Pure. The report is bounded before it is stored, since it lands in the
TaskRun's status and Kubernetes objects must stay small (`podtask._contract.limits`): an output
over `MAX_OUTPUT_BYTES` (or one a TaskRun cannot hold) is refused, an error is cut to
`MAX_ERROR_BYTES` (`podtask._contract.bounded_errors`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import StrictBool, model_validator

from podtask._contract import resources
from podtask._contract.bounded_errors import bounded_error
from podtask._contract.limits import MAX_OUTPUT_BYTES
from podtask._contract.resources import AttemptReport
from podtask_api.errors import ApiError
from podtask_api.stored_json import encoded_size


class CompletionReport(resources.CompletionReport):
    """`POST .../complete`: what the runner says about the attempt it ran (the wire model,
    held to what the API stores)."""

    ok: StrictBool

    @model_validator(mode="after")
    def _failure_has_error(self) -> CompletionReport:
        if not self.ok and self.error is None:
            raise ValueError("a failed attempt (ok: false) must say what the error was")
        return self


def attempt_report(
    report: CompletionReport, attempt: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """The `status.report` to store, in full: absent values are explicit nulls."""
    if report.ok:
        size = encoded_size(report.output, "output")
        if size > MAX_OUTPUT_BYTES:
            raise ApiError(
                413,
                "output_too_large",
                f"the output is {size} bytes of JSON, over the limit of {MAX_OUTPUT_BYTES} bytes",
                {"size": size, "limit": MAX_OUTPUT_BYTES},
            )
    fields: dict[str, Any] = {
        "attempt": attempt,
        "ok": report.ok,
        "output": report.output if report.ok else None,
        "error": None if report.error is None or report.ok else bounded_error(report.error),
    }
    if now is not None:
        fields["reported_at"] = now
    return AttemptReport(**fields).model_dump(mode="json", by_alias=True)
