"""The runner's completion report: its request shape, the `AttemptReport` it becomes, and
the write that records it (`report_writes`: a success completes the run in the same write).

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
from podtask._contract.resources import AttemptReport, RunPhase, TaskRunStatus
from podtask._contract.run_endings import completed
from podtask._contract.status_patches import status_set, status_update
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


def completes(status: TaskRunStatus, report: AttemptReport) -> bool:
    """Whether recording `report` completes the run: a success of the attempt the run records
    as executing. A report that comes before the operator recorded its attempt (the runner's
    token proves the attempt started) is only recorded: the operator, which records the
    attempt whatever else changed, completes that run once it has."""
    return (
        report.ok
        and status.attempt == report.attempt
        and status.phase == RunPhase.EXECUTING.value
        and bool(status.attempts)
    )


def report_writes(
    run: dict[str, Any], report: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    """The JSON patch operations that record `report` (as stored) on `run` (as read): set
    `status.report`; and, when it completes the run (`completes`), the final status with it,
    the very one the operator writes for a success (`run_endings.completed`): one write for
    the report and the end, where there were two."""
    read = run.get("status")
    old = TaskRunStatus.model_validate(read or {})
    stored = AttemptReport.model_validate(report)
    if not completes(old, stored):
        return [status_set(read, "report", report)]
    reported = old.model_copy(update={"report": stored})
    new = completed(reported, stored.output, now).to_wire()
    # The report as stored in full (`attempt_report`) but its output, moved to
    # `status.output`: stored once, as the operator leaves a report it moves it from.
    new["report"] = {key: value for key, value in report.items() if key != "output"}
    return status_update(read, old.to_wire(), new)
