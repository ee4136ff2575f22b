"""What the dashboard shows of the tasks' recent runs: how many of each task's runs were
created in a window (the last 24 hours), by status (`tally_runs`), and a task's recent
payloads to test with again (`recent_payloads`).

Counting must not read every run the cluster keeps (there may be 10,000 and more, most of
them older than the window). Kubernetes lists in name order and filters by label only, and
run ids are named so that name order is newest first (`run_names`), so:

- the runs without an idempotency key (label selector `!podtask.dev/idempotency`) are read
  newest first and the reading stops at the first one created before the window: the cost
  is the runs of the window, not all runs;
- the runs with a key (`podtask.dev/idempotency`) have ids made from their key, in no time
  order: they are all read, and those of the window counted.

At most `MAX_TALLIED` runs are read in all; past that the tallies say they are incomplete
(`Tallies.complete`) rather than take longer. A run whose id was not made by the API (a
TaskRun created with kubectl under a name of its own) is counted only if its name sorts
before the point where the reading stops.

Pure but for the `fetch` it is given (as `run_listing.list_page`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from podtask._contract.resources import parse_timestamp
from podtask._contract.run_ids import RUN_NAME_PREFIX
from podtask_api.idempotency import LABEL_IDEMPOTENCY
from podtask_api.run_listing import Fetch, run_status

# Runs read per request to the cluster.
TALLY_CHUNK = 500
# Runs read at most for one tally.
MAX_TALLIED = 20_000
UNKEYED = f"!{LABEL_IDEMPOTENCY}"
KEYED = LABEL_IDEMPOTENCY
# How many distinct payloads the Test page offers, and how many runs it looks through.
RECENT_PAYLOADS = 10
RECENT_RUNS_READ = 50
# A payload larger than this is not offered (the Test page holds them all in the page).
MAX_OFFERED_PAYLOAD_BYTES = 64 * 1024


@dataclass
class Tallies:
    """Runs created since `since`, counted by task id and status."""

    since: datetime
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    examined: int = 0
    # False when the reading stopped at `MAX_TALLIED` runs before reaching the window's end.
    complete: bool = True

    def add(self, run: Mapping[str, Any]) -> None:
        task_id = str((run.get("spec") or {}).get("taskId") or "")
        if task_id:
            self.counts.setdefault(task_id, Counter())[run_status(run)] += 1

    def of(self, task_id: str) -> Counter[str]:
        return self.counts.get(task_id, Counter())


def _created(run: Mapping[str, Any]) -> datetime | None:
    return parse_timestamp((run.get("metadata") or {}).get("creationTimestamp"))


def is_countdown_name(name: str) -> bool:
    """Whether `name` is a run id made by `run_names.random_run_name` (newest first)."""
    rest = name[len(RUN_NAME_PREFIX) :]
    return name.startswith(RUN_NAME_PREFIX) and rest[:1].isdigit()


def _name(run: Mapping[str, Any]) -> str:
    return str((run.get("metadata") or {}).get("name") or "")


async def _tally_part(
    fetch: Fetch, selector: str, tallies: Tallies, *, stop_at_window: bool, limit: int
) -> None:
    token: str | None = None
    while True:
        chunk = await fetch(selector, TALLY_CHUNK, token)
        for run in chunk.items:
            if tallies.examined >= limit:
                tallies.complete = False
                return
            tallies.examined += 1
            created = _created(run)
            if created is not None and created >= tallies.since:
                tallies.add(run)
            elif stop_at_window and created is not None and is_countdown_name(_name(run)):
                return  # every run after this one in name order is older
        token = chunk.continue_token
        if not token:
            return


async def tally_runs(fetch: Fetch, since: datetime, *, limit: int = MAX_TALLIED) -> Tallies:
    """The runs created at or after `since`, by task and status, reading as few as it can."""
    tallies = Tallies(since=since)
    await _tally_part(fetch, UNKEYED, tallies, stop_at_window=True, limit=limit)
    await _tally_part(fetch, KEYED, tallies, stop_at_window=False, limit=limit)
    return tallies


@dataclass(frozen=True)
class RecentPayload:
    """A payload a run of the task was triggered with, and the newest such run."""

    run_id: str
    created_at: str | None
    payload: Any


def recent_payloads(
    runs: Sequence[Mapping[str, Any]], *, count: int = RECENT_PAYLOADS
) -> list[RecentPayload]:
    """The newest distinct payloads of `runs` (newest first), at most `count`; payloads too
    large to offer in a page are left out."""
    seen: set[str] = set()
    found: list[RecentPayload] = []
    for run in runs:
        payload = (run.get("spec") or {}).get("payload")
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        if text in seen or len(text.encode()) > MAX_OFFERED_PAYLOAD_BYTES:
            continue
        seen.add(text)
        metadata = run.get("metadata") or {}
        found.append(
            RecentPayload(
                run_id=_name(run), created_at=metadata.get("creationTimestamp"), payload=payload
            )
        )
        if len(found) == count:
            break
    return found
