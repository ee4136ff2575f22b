"""The Tasks page's counts and the Test page's recent payloads (`task_activity`), over runs
listed as Kubernetes lists them (name order, chunks, label selectors), and the words the
Tasks page shows (`catalog_pages`). Pure."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from podtask._contract.resources import format_timestamp
from podtask_api.dashboard.catalog_pages import limit_note, retry_summary, status_counts
from podtask_api.idempotency import LABEL_IDEMPOTENCY
from podtask_api.run_listing import Chunk
from podtask_api.run_names import idempotent_run_name, random_run_name
from podtask_api.task_activity import (
    KEYED,
    MAX_OFFERED_PAYLOAD_BYTES,
    UNKEYED,
    is_countdown_name,
    recent_payloads,
    tally_runs,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=24)


def run(
    task: str,
    created: datetime,
    phase: str | None = None,
    *,
    key: str | None = None,
    payload: Any = None,
    name: str | None = None,
) -> dict[str, Any]:
    labels = {LABEL_IDEMPOTENCY: "h"} if key else {}
    return {
        "metadata": {
            "name": name
            or (idempotent_run_name(task, key, 1) if key else random_run_name(created)),
            "creationTimestamp": format_timestamp(created),
            "labels": labels,
        },
        "spec": {"taskId": task, "payload": payload},
        "status": {"phase": phase} if phase else {},
    }


class Cluster:
    """Runs listed as Kubernetes lists them: name order, `limit` at a time, by label."""

    def __init__(self, runs: list[dict[str, Any]]) -> None:
        self.runs = sorted(runs, key=lambda r: r["metadata"]["name"])
        self.read: Counter[str] = Counter()

    async def fetch(self, selector: str | None, limit: int, token: str | None) -> Chunk:
        def selected(r: dict[str, Any]) -> bool:
            has_key = LABEL_IDEMPOTENCY in r["metadata"]["labels"]
            return {UNKEYED: not has_key, KEYED: has_key, None: True}[selector]

        matching = [r for r in self.runs if selected(r)]
        start = int(token or 0)
        items = matching[start : start + limit]
        self.read[str(selector)] += len(items)
        more = start + limit < len(matching)
        return Chunk(items, str(start + limit) if more else None)


def tally(cluster: Cluster, **options: Any) -> Any:
    return asyncio.run(tally_runs(cluster.fetch, SINCE, **options))


def test_runs_of_the_window_are_counted_by_task_and_status() -> None:
    cluster = Cluster(
        [
            run("a", NOW - timedelta(hours=1), "Completed"),
            run("a", NOW - timedelta(hours=2), "Completed"),
            run("a", NOW - timedelta(hours=3), "Failed"),
            run("a", NOW - timedelta(minutes=1)),  # no phase yet: Pending
            run("b", NOW - timedelta(hours=5), "Executing"),
            run("a", NOW - timedelta(hours=30), "Completed"),  # before the window
            run("b", NOW - timedelta(hours=2), "Completed", key="k1"),
            run("b", NOW - timedelta(days=3), "Completed", key="k2"),
        ]
    )
    counted = tally(cluster)
    assert counted.of("a") == Counter({"Completed": 2, "Failed": 1, "Pending": 1})
    assert counted.of("b") == Counter({"Executing": 1, "Completed": 1})
    assert counted.of("c") == Counter()
    assert counted.complete


def test_the_reading_of_runs_without_a_key_stops_at_the_window() -> None:
    recent = [run("a", NOW - timedelta(minutes=m), "Completed") for m in range(1, 11)]
    old = [run("a", NOW - timedelta(days=2, minutes=m), "Completed") for m in range(5000)]
    cluster = Cluster(recent + old)
    counted = tally(cluster)
    assert counted.of("a") == Counter({"Completed": 10})
    # One chunk: the ten runs of the window and the first one before it, not the 5,000 old.
    assert cluster.read[UNKEYED] <= 500 and counted.examined == 11


def test_runs_named_by_hand_before_the_api_s_names_are_counted() -> None:
    cluster = Cluster(
        [
            run("a", NOW - timedelta(hours=1), "Completed", name="a-by-hand"),
            run("a", NOW - timedelta(hours=2), "Completed"),
            run("a", NOW - timedelta(days=2), "Completed"),
        ]
    )
    assert tally(cluster).of("a") == Counter({"Completed": 2})
    assert is_countdown_name(random_run_name(NOW))
    assert not is_countdown_name(idempotent_run_name("a", "k", 1))
    assert not is_countdown_name("a-by-hand")


def test_past_the_bound_the_tallies_say_they_are_partial() -> None:
    cluster = Cluster([run("a", NOW - timedelta(seconds=s), "Completed") for s in range(1, 40)])
    counted = tally(cluster, limit=25)
    assert not counted.complete and counted.examined == 25
    assert counted.of("a") == Counter({"Completed": 25})


def test_recent_payloads_are_distinct_newest_first_and_small_enough() -> None:
    runs = [
        run("a", NOW, payload={"name": "x", "n": 1}),
        run("a", NOW, payload={"n": 1, "name": "x"}),  # the same JSON
        run("a", NOW, payload=None),
        run("a", NOW, payload="x" * MAX_OFFERED_PAYLOAD_BYTES),
        run("a", NOW, payload=[1, 2]),
    ]
    found = recent_payloads(runs)
    assert [item.payload for item in found] == [{"name": "x", "n": 1}, None, [1, 2]]
    assert found[0].run_id == runs[0]["metadata"]["name"]
    assert len(recent_payloads([run("a", NOW, payload=n) for n in range(30)], count=4)) == 4


def test_the_tasks_page_words() -> None:
    policy = {
        "maxAttempts": 3,
        "factor": 2.0,
        "minTimeoutMs": 1000,
        "maxTimeoutMs": 60000,
        "randomize": True,
        "outOfMemoryMachine": None,
    }
    assert retry_summary(policy) == "3 attempts, backoff 1 s to 60 s, factor 2"
    assert retry_summary({**policy, "maxAttempts": 1}) == "no retries (1 attempt)"
    oom = {**policy, "randomize": False, "outOfMemoryMachine": "large-1x"}
    assert retry_summary(oom).endswith("not randomized; out of memory: retry on large-1x")
    counts = {"Failed": 2, "Completed": 5, "Pending": 1, "Odd": 1, "Queued": 0}
    assert status_counts(counts) == [("Pending", 1), ("Completed", 5), ("Failed", 2), ("Odd", 1)]


def test_where_a_queue_s_limit_comes_from() -> None:
    assert limit_note({"concurrencyLimit": 3}, 1) == "set here"
    assert limit_note({"concurrencyLimit": 3}, None) == "set here"
    assert limit_note({"concurrencyLimit": 1}, 1) == "declared"
    assert limit_note({"concurrencyLimit": None}, 1) == "declared"
    assert limit_note({"concurrencyLimit": None}, None) == "default"
