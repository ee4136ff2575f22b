"""A delete request's options (kube's `DeleteOptions`) and the finalizers through which the
garbage collector finishes an `Orphan` or `Foreground` deletion."""

from __future__ import annotations

from dataclasses import dataclass

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
PROPAGATION_FINALIZERS = {"Orphan": ORPHAN, "Foreground": FOREGROUND}


@dataclass(frozen=True)
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False
