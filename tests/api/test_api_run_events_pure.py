"""The pure rules of the runs' event streams (`podtask_api.run_events`): a watch line as a
change, who wants it, each subscriber's backlog, the replay window, the frames, and what the
stream of one run sends."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from podtask_api.run_events import (
    END_FRAME,
    KEEPALIVE,
    OneRun,
    PendingChanges,
    ReplayWindow,
    RunChange,
    RunFollow,
    RunList,
    WatchExpired,
    WatchFailed,
    WatchLine,
    is_newer,
    relist_changes,
    run_frame,
    sse_frame,
    watch_change,
)
from podtask_api.run_listing import RunFilters


def taskrun(
    name: str, version: int, phase: str | None = None, *, task: str = "t", tags: list[str] = ()
) -> dict[str, Any]:
    run: dict[str, Any] = {
        "metadata": {
            "name": name,
            "resourceVersion": str(version),
            "creationTimestamp": "2024-05-01T12:00:00Z",
        },
        "spec": {"taskId": task, "tags": list(tags), "queue": {"name": "q"}},
    }
    if phase is not None:
        run["status"] = {"phase": phase}
    return run


def change(
    name: str, version: int, phase: str | None = None, previous: str | None = None, **kw: Any
) -> RunChange:
    return RunChange("run", name, taskrun(name, version, phase, **kw), str(version), previous, 100)


def line(kind: str, obj: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "object": obj})


def shown(run: Any) -> dict[str, Any]:
    """A stand-in for the API's run JSON: what these rules read of it."""
    return {
        "id": run["metadata"]["name"],
        "status": (run.get("status") or {}).get("phase") or "Pending",
        "output": (run.get("status") or {}).get("output"),
    }


def test_versions_compare_as_numbers_and_else_count_as_newer() -> None:
    assert is_newer("10", "9") and not is_newer("9", "10") and not is_newer("9", "9")
    assert is_newer("9", None) and is_newer("abc", "9") and is_newer("9", "abc")


def test_a_watch_line_is_a_change_that_knows_the_status_before() -> None:
    statuses: dict[str, str] = {}
    added = watch_change(line("ADDED", taskrun("a", 5)), statuses)
    assert added.version == "5" and added.change is not None
    assert (added.change.kind, added.change.status, added.change.previous_status) == (
        "run",
        "Pending",
        None,
    )
    modified = watch_change(line("MODIFIED", taskrun("a", 6, "Queued")), statuses)
    assert modified.change is not None and modified.change.previous_status == "Pending"
    assert statuses == {"a": "Queued"}
    deleted = watch_change(line("DELETED", taskrun("a", 7, "Queued")), statuses)
    assert deleted.change is not None and deleted.change.kind == "deleted"
    assert statuses == {}
    bookmark = {"kind": "TaskRun", "metadata": {"resourceVersion": "12"}}
    assert watch_change(line("BOOKMARK", bookmark), statuses) == WatchLine(None, "12")


def test_watch_errors_410_and_others() -> None:
    with pytest.raises(WatchExpired):
        watch_change(line("ERROR", {"code": 410, "message": "too old"}), {})
    with pytest.raises(WatchFailed, match="500"):
        watch_change(line("ERROR", {"code": 500, "message": "boom"}), {})
    with pytest.raises(WatchFailed):
        watch_change(line("WHAT", {}), {})


def test_a_relist_passes_on_what_changed_since_and_the_followed_runs_gone() -> None:
    statuses = {"kept": "Queued", "moved": "Queued", "gone": "Executing", "other-gone": "Queued"}
    items = [taskrun("kept", 10, "Queued"), taskrun("moved", 25, "Completed")]
    changes = relist_changes(items, "20", {"gone", "kept"}, statuses)
    assert [(c.kind, c.name, c.previous_status) for c in changes] == [
        ("run", "moved", "Queued"),
        ("deleted", "gone", "Executing"),
    ]
    assert statuses == {"kept": "Queued", "moved": "Completed"}
    # Without a version to go from (never watched), every run is passed on.
    assert len(relist_changes(items, None, (), {})) == 2


def test_who_wants_a_change() -> None:
    assert OneRun("a").wants(change("a", 1)) and not OneRun("a").wants(change("b", 1))
    executing = RunList(RunFilters(statuses=frozenset({"Executing"}), task_id="t"))
    assert executing.wants(change("a", 2, "Executing"))
    assert not executing.wants(change("a", 2, "Executing", task="other"))
    assert not executing.wants(change("a", 2, "Queued", previous="Pending"))
    # Leaving the statuses asked for: sent once more, with its new status.
    assert executing.wants(change("a", 3, "Completed", previous="Executing"))
    assert not executing.wants(change("a", 3, "Completed", previous="Executing", task="x"))
    assert not executing.wants(change("a", 4, "Completed", previous="Completed"))
    tagged = RunList(RunFilters(tags=frozenset({"vip", "x"})))
    assert tagged.wants(change("a", 1, tags=["x"])) and not tagged.wants(change("a", 1))
    assert not RunList(RunFilters(), matches_none=True).wants(change("a", 1))
    since = RunList(RunFilters(created_from=datetime(2024, 6, 1, tzinfo=UTC)))
    assert not since.wants(change("a", 1))


def test_a_backlog_keeps_every_status_and_only_the_latest_of_each() -> None:
    pending = PendingChanges(limit=10)
    for version, phase in enumerate(["Queued", "Executing", "Executing", "Executing"], 1):
        assert pending.add(change("a", version, phase))
    assert pending.add(change("b", 5, "Queued"))
    assert pending.add(change("a", 6, "Completed"))
    taken = []
    while (next_change := pending.take()) is not None:
        taken.append((next_change.name, next_change.version, next_change.status))
    # "a" Executing thrice: the latest only, where it happened (after "a" 1, before "b").
    assert taken == [
        ("a", "1", "Queued"),
        ("a", "4", "Executing"),
        ("b", "5", "Queued"),
        ("a", "6", "Completed"),
    ]


def test_a_backlog_says_when_its_subscriber_is_too_far_behind() -> None:
    pending = PendingChanges(limit=3)
    assert all(pending.add(change(f"r{n}", n)) for n in range(3))
    assert not pending.add(change("r9", 9))


def test_a_backlog_gives_what_came_before_a_version() -> None:
    pending = PendingChanges()
    for version, phase in ((3, "Queued"), (5, "Executing"), (8, "Completed")):
        pending.add(change("a", version, phase))
    assert [c.version for c in pending.take_before("6")] == ["3", "5"]
    assert [c.version for c in pending.take_before("6")] == []
    assert len(pending) == 1


def test_the_replay_window_keeps_the_latest_changes() -> None:
    window = ReplayWindow("10", max_bytes=350, max_changes=100)
    for version in (11, 12, 13):
        window.add(change("a", version))
    since = window.since("11")
    assert since is not None and [c.version for c in since] == ["12", "13"]
    window.add(change("a", 14))  # 400 bytes: the oldest goes
    assert window.since("10") is None  # 11 is no longer kept
    since = window.since("11")
    assert since is not None and [c.version for c in since] == ["12", "13", "14"]
    assert window.since("14") == [] and window.since("not-a-number") is None
    counted = ReplayWindow("0", max_changes=2)
    for version in (1, 2, 3):
        counted.add(change("a", version))
    assert counted.floor == "1" and counted.since("0") is None


def test_the_frames() -> None:
    assert KEEPALIVE == b": keepalive\n\n"
    assert END_FRAME == b"event: end\ndata: {}\n\n"
    frame = sse_frame("run", {"id": "a", "text": "two\nlines é"}, "42")
    assert frame == 'event: run\nid: 42\ndata: {"id":"a","text":"two\\nlines é"}\n\n'.encode()
    gone = RunChange("deleted", "a", taskrun("a", 9), "9")
    assert run_frame(gone, shown) == b'event: deleted\nid: 9\ndata: {"id":"a"}\n\n'
    assert run_frame(change("a", 3, "Queued"), shown).startswith(b"event: run\nid: 3\ndata: {")


def events_of(frames: list[bytes]) -> list[tuple[str, str | None]]:
    """(event, status) of each frame."""
    found = []
    for frame in frames:
        fields = dict(part.split(": ", 1) for part in frame.decode().strip().split("\n"))
        found.append((fields["event"], json.loads(fields["data"]).get("status")))
    return found


def test_one_run_current_state_then_each_change_once_then_the_end() -> None:
    follow = RunFollow(shown)
    assert events_of(follow.current(taskrun("a", 5, "Queued"))) == [("run", "Queued")]
    assert follow.change(change("a", 4, "Pending")) == []  # older than what was sent
    assert follow.change(change("a", 5, "Queued")) == []  # the same state
    assert follow.change(change("a", 6, "Queued")) == []  # shows the same
    assert events_of(follow.change(change("a", 7, "Executing"))) == [("run", "Executing")]
    assert events_of(follow.change(change("a", 9, "Completed"))) == [
        ("run", "Completed"),
        ("end", None),
    ]
    assert follow.ended and follow.change(change("a", 10, "Completed")) == []


def test_one_run_deleted() -> None:
    follow = RunFollow(shown)
    follow.current(taskrun("a", 5, "Queued"))
    frames = follow.change(RunChange("deleted", "a", taskrun("a", 6, "Queued"), "6"))
    assert [frame.split(b"\n")[0] for frame in frames] == [b"event: deleted", b"event: end"]
    assert follow.ended


def test_one_run_resumed() -> None:
    # The client had version 5: the current state is not sent again...
    resumed = RunFollow(shown, resumed_from="5")
    assert resumed.current(taskrun("a", 5, "Queued")) == []
    assert events_of(resumed.change(change("a", 6, "Executing"))) == [("run", "Executing")]
    # ... unless it moved on meanwhile; and a final one it had only needs the end.
    assert events_of(RunFollow(shown, "5").current(taskrun("a", 8, "Executing"))) == [
        ("run", "Executing")
    ]
    assert RunFollow(shown, "5").current(taskrun("a", 5, "Failed")) == [END_FRAME]
