"""The batch gate: which runs wait for their batch's commit, and when they are let go."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from podtask._contract.batch_markers import LABEL_BATCH, new_marker, owner_reference, read_marker
from podtask_operator.batch_gate import BatchGate, needs_commit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def marker(state: str = "open", uid: str = "u1") -> dict[str, Any]:
    body = new_marker("b1", "s", 2, ["t"], "d", NOW)
    body["metadata"] = {**body["metadata"], "uid": uid, "resourceVersion": "1"}
    body["data"] = {**body["data"], "state": state}
    return body


def run(name: str, uid: str = "u1", phase: str | None = None) -> dict[str, Any]:
    found = read_marker(marker(uid=uid))
    assert found is not None
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "labels": {LABEL_BATCH: "b1"},
            "ownerReferences": [owner_reference(found)],
        }
    }
    if phase:
        body["status"] = {"phase": phase}
    return body


def test_only_runs_of_a_batch_not_yet_under_way_wait_for_a_commit() -> None:
    assert needs_commit({"metadata": {"name": "run-1"}}) is None
    assert needs_commit(run("run-s-000", phase="Queued")) is None
    owner = needs_commit(run("run-s-000"))
    assert owner is not None and owner.uid == "u1"


class Markers:
    """The markers the gate reads, as the cluster would answer, counting the reads."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.reads = 0

    async def read(self, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.stored.get(name)


@pytest.mark.anyio
async def test_runs_are_held_until_the_commit_and_then_let_go_together() -> None:
    markers = Markers()
    markers.stored["podtask-batch-b1"] = marker("open")
    gate = BatchGate(markers.read)
    assert not await gate.admits(run("run-s-000"))
    assert not await gate.admits(run("run-s-001"))
    assert markers.reads == 1  # a batch known open is not read again: its commit is an event
    assert gate.is_held("run-s-001")
    assert gate.marker_changed(marker("open")) == []
    assert gate.marker_changed(marker("committed")) == ["run-s-000", "run-s-001"]
    assert not gate.is_held("run-s-000")
    assert await gate.admits(run("run-s-000"))
    assert markers.reads == 1  # known committed


@pytest.mark.anyio
async def test_a_missing_or_replaced_marker_commits_nothing() -> None:
    markers = Markers()
    gate = BatchGate(markers.read)
    assert not await gate.admits(run("run-s-000"))  # no marker (withdrawn, abandoned)
    other = BatchGate(markers.read)
    markers.stored["podtask-batch-b1"] = marker("committed", uid="u2")
    assert not await other.admits(run("run-s-000", uid="u1"))  # a later batch of that name
    assert other.marker_changed(marker("committed", uid="u2")) == []
    # The marker deleted: its held runs are dropped (they go with it).
    assert other.marker_changed(marker("open", uid="u1"), deleted=True) == []
    assert not other.is_held("run-s-000")


@pytest.mark.anyio
async def test_a_commit_seen_while_the_marker_was_being_read_is_not_missed() -> None:
    gate: BatchGate

    async def read_then_commit(name: str) -> dict[str, Any] | None:
        # The commit's watch event is handled while this read is under way.
        gate.marker_changed(marker("committed"))
        return marker("open")

    gate = BatchGate(read_then_commit)
    assert await gate.admits(run("run-s-000"))
