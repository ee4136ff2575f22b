"""A batch's commit marker, pure: names, states, the commit patch, which runs it owns; and
when the Python client sends a batch again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from podtask._contract.batch_markers import (
    LABEL_BATCH,
    BatchOwner,
    BatchRun,
    BatchState,
    CommittedBatches,
    batch_owner,
    batch_run_name,
    commit_patch,
    commits,
    keyed_batch_id,
    marker_name,
    new_marker,
    owner_reference,
    read_marker,
    request_digest,
)
from podtask.client import (
    BATCH_TRIES,
    MAX_BATCH_BACKOFF_SECONDS,
    PodtaskApiError,
    PodtaskConnectionError,
    batch_backoff,
    batch_may_retry,
    new_batch_key,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def stored(body: dict[str, Any], uid: str = "uid-1", version: str = "7") -> dict[str, Any]:
    """`body` as the cluster stores it: with a uid and a resourceVersion."""
    return {**body, "metadata": {**body["metadata"], "uid": uid, "resourceVersion": version}}


def test_names_are_fixed_by_the_batch_and_item() -> None:
    assert batch_run_name("0abc", 7) == "run-0abc-007"
    assert batch_run_name("0abc", 999) == "run-0abc-999"
    assert marker_name("k12") == "podtask-batch-k12"
    # A key names the same batch every time; another key, or another parent run, another one.
    assert keyed_batch_id("key", None) == keyed_batch_id("key", None)
    assert keyed_batch_id("key", None) != keyed_batch_id("other", None)
    assert keyed_batch_id("key", None) != keyed_batch_id("key", "run-parent")
    assert len(keyed_batch_id("key", None)) <= 63  # a label value


def test_a_new_marker_reads_back_open() -> None:
    body = new_marker("b1", "0stem", 3, ["t2", "t1", "t1"], "d" * 64, NOW)
    assert body["metadata"] == {"name": "podtask-batch-b1", "labels": {LABEL_BATCH: "b1"}}
    marker = read_marker(stored(body))
    assert marker is not None
    assert (marker.batch_id, marker.state, marker.stem, marker.items) == (
        "b1",
        BatchState.OPEN,
        "0stem",
        3,
    )
    assert marker.task_ids == ("t1", "t2")
    assert marker.created_at == NOW
    assert (marker.uid, marker.resource_version, marker.runs) == ("uid-1", "7", ())


def test_the_commit_is_one_guarded_write_with_the_answer() -> None:
    marker = read_marker(stored(new_marker("b1", "s", 2, ["t"], "d", NOW)))
    assert marker is not None
    patch = commit_patch(marker, [BatchRun("run-s-000", False), BatchRun("run-k1-1", True)])
    assert patch[0] == {"op": "test", "path": "/data/state", "value": "open"}
    committed = stored(new_marker("b1", "s", 2, ["t"], "d", NOW))
    committed["data"] = {**committed["data"], "state": "committed", "runs": patch[2]["value"]}
    read = read_marker(committed)
    assert read is not None and read.state is BatchState.COMMITTED
    assert read.runs == (BatchRun("run-s-000", False), BatchRun("run-k1-1", True))


def test_other_config_maps_are_not_markers() -> None:
    body = stored(new_marker("b1", "s", 1, ["t"], "d", NOW))
    assert read_marker({"metadata": {"name": "podtask-deployment-1"}, "data": {}}) is None
    assert read_marker({**body, "data": {**body["data"], "state": "half"}}) is None
    renamed = {**body, "metadata": {**body["metadata"], "name": "podtask-batch-b2"}}
    assert read_marker(renamed) is None


def test_a_run_belongs_to_the_marker_it_is_owned_by() -> None:
    marker = read_marker(stored(new_marker("b1", "s", 1, ["t"], "d", NOW), uid="u1"))
    assert marker is not None
    run = {
        "metadata": {
            "name": "run-s-000",
            "labels": {LABEL_BATCH: "b1"},
            "ownerReferences": [owner_reference(marker)],
        }
    }
    assert batch_owner(run) == BatchOwner("b1", "u1")
    assert batch_owner({"metadata": {"name": "run-1"}}) is None
    # Labelled but not owned: no marker can commit it.
    assert batch_owner({"metadata": {"labels": {LABEL_BATCH: "b1"}}}) == BatchOwner("b1", "")
    assert not commits(marker, BatchOwner("b1", "u1"))  # open
    committed = read_marker(
        stored(
            {
                **new_marker("b1", "s", 1, ["t"], "d", NOW),
                "data": {"state": "committed", "stem": "s", "items": "1"},
            },
            uid="u1",
        )
    )
    assert commits(committed, BatchOwner("b1", "u1"))
    # A later marker of the same name (the key's batch made again) commits none of the old.
    assert not commits(committed, BatchOwner("b1", "u0"))
    assert not commits(committed, BatchOwner("b1", ""))
    assert not commits(None, BatchOwner("b1", "u1"))


def test_committed_batches_are_remembered_up_to_a_bound() -> None:
    known = CommittedBatches(bound=2)
    for uid in ("a", "b", "a", "c"):
        known.add(uid)
    assert "a" in known and "c" in known and "b" not in known


def test_the_digest_tells_a_retry_from_another_batch() -> None:
    items = [{"task": "t", "payload": {"a": 1, "b": 2}}]
    same = [{"payload": {"b": 2, "a": 1}, "task": "t"}]
    assert request_digest(items) == request_digest(same)
    assert request_digest(items) != request_digest([{"task": "t", "payload": {"a": 2}}])


def test_the_client_sends_a_batch_again_only_when_it_may_not_have_been_seen_through() -> None:
    assert batch_may_retry(PodtaskConnectionError("Server disconnected"))
    for status in (500, 502, 503, 504, 429):
        assert batch_may_retry(PodtaskApiError(status, "x", "failed"))
    for status in (400, 401, 403, 404, 409, 413, 422):
        assert not batch_may_retry(PodtaskApiError(status, "x", "refused"))
    waits = [batch_backoff(n) for n in range(1, BATCH_TRIES)]
    assert waits == sorted(waits) and waits[-1] <= MAX_BATCH_BACKOFF_SECONDS
    assert new_batch_key() != new_batch_key()
