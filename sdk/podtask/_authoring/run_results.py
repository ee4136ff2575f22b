"""What a trigger gives back: a handle on the new run, and the result of a finished run.

Pure: built from the API's JSON answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podtask._contract.resources import FINAL_PHASES, RunError, RunPhase
from podtask.errors import PodtaskError

FINAL_STATUSES = frozenset(str(phase) for phase in FINAL_PHASES)


@dataclass(frozen=True)
class RunHandle:
    """A triggered run: its id, and whether it already existed for the idempotency key."""

    id: str
    task_id: str
    is_cached: bool = False

    @classmethod
    def from_wire(cls, answer: Mapping[str, Any], task_id: str) -> RunHandle:
        return cls(id=str(answer["id"]), task_id=task_id, is_cached=bool(answer.get("isCached")))

    def to_wire(self) -> dict[str, Any]:
        """The API's answer it stands for (`TriggeredRun`), as `podtask trigger -o json`
        prints it."""
        return {"id": self.id, "isCached": self.is_cached}


class RunFailedError(PodtaskError):
    """`RunResult.unwrap()` of a run that did not complete: its id, status and error."""

    def __init__(self, run_id: str, status: RunPhase, error: RunError | None) -> None:
        self.run_id = run_id
        self.status = status
        self.error = error
        cause = f": {error.type}: {error.message}" if error is not None else ""
        super().__init__(f"run {run_id!r} ended as {status}{cause}")


@dataclass(frozen=True)
class RunResult:
    """A finished run: `ok` when it Completed, with its `output`; else its `error`."""

    id: str
    task_id: str
    status: RunPhase
    output: Any = None
    error: RunError | None = None

    @property
    def ok(self) -> bool:
        return self.status == RunPhase.COMPLETED

    def unwrap(self) -> Any:
        """The output of a completed run; for any other end, raise `RunFailedError`."""
        if not self.ok:
            raise RunFailedError(self.id, self.status, self.error)
        return self.output

    @classmethod
    def from_view(cls, view: Mapping[str, Any]) -> RunResult:
        """From `GET /api/v1/runs/{id}` of a run in a final status."""
        error = view.get("error")
        return cls(
            id=str(view["id"]),
            task_id=str(view.get("taskId") or ""),
            status=RunPhase(view["status"]),
            output=view.get("output"),
            error=RunError.model_validate(error) if error else None,
        )


def is_finished(view: Mapping[str, Any]) -> bool:
    return view.get("status") in FINAL_STATUSES
