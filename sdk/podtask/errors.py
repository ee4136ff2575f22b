"""Errors a task author can raise or meet."""

from __future__ import annotations


class PodtaskError(Exception):
    """Base class of podtask's own errors."""


class TaskDeclarationError(PodtaskError):
    """A task is declared wrongly: the message names the task and the field."""


class AbortTaskRunError(PodtaskError):
    """Raised by a task to end its run at once, with no further retries."""


class TaskModuleImportError(PodtaskError):
    """A task module could not be imported; the message names the module and the cause."""


class PayloadValidationError(PodtaskError):
    """The payload does not match the model that `run`'s `payload` parameter is annotated with.

    The message lists each invalid field; `problems` holds the same, one entry a field.
    Another attempt would get the same payload, so the run is not retried.
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


# The two interruptions below derive from BaseException, as KeyboardInterrupt does, so that
# an `except Exception:` in task code cannot swallow them and keep a stopped attempt going.


class TaskTerminatedError(BaseException):
    """The attempt's pod was told to stop (SIGTERM: the run was canceled, or the pod was
    evicted or deleted) while the task was running. Catch it only to clean up, then re-raise."""


class MaxDurationExceededError(BaseException):
    """The attempt ran longer than the task's `max_duration`."""
