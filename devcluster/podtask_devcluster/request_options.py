"""A write request's options, as kube's `CreateOptions`, `UpdateOptions` and `PatchOptions`
(`WriteOptions`) and `DeleteOptions`, and the finalizers through which the garbage collector
finishes an `Orphan` or `Foreground` deletion."""

from __future__ import annotations

from dataclasses import dataclass, field

from podtask_devcluster.custom_resources import FieldValidation

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
PROPAGATION_FINALIZERS = {"Orphan": ORPHAN, "Foreground": FOREGROUND}


@dataclass(frozen=True)
class WriteOptions:
    """`validation` collects the request's warnings (and, for a patch, what it made);
    `field_manager` and `force` matter to a server-side apply only."""

    dry_run: bool = False
    validation: FieldValidation = field(default_factory=FieldValidation)
    field_manager: str | None = None
    force: bool = False


@dataclass(frozen=True)
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False
