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
