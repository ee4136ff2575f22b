"""The ledger of task executions, read back and checked.

The tasks in `task_modules/ledger_tasks.py` write it from inside their pods, so it
records what really executed, whatever the stack recorded or lost. The checks here hold
for any fault: a body that returned and reported runs no more; no attempt started twice
(two pods for one attempt).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START = "start"
RETURNED = "returned"


@dataclass(frozen=True)
class Entry:
    event: str
    run: str
    attempt: int
    pid: int
    at: float


class Ledger:
    """One ledger file; `payload` names it for the ledger tasks."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def payload(self, **fields: Any) -> dict[str, Any]:
        return {"ledger": str(self.path), **fields}

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        entries = []
        for line in self.path.read_text().splitlines():
            event, run, attempt, pid, at = line.split()
            entries.append(Entry(event, run, int(attempt), int(pid), float(at)))
        return entries

    def count(self, event: str) -> Counter[tuple[str, int]]:
        """How many times each (run, attempt) logged `event`."""
        return Counter((e.run, e.attempt) for e in self.entries() if e.event == event)

    def returned_runs(self) -> Counter[str]:
        """How many times each run's body returned, over all its attempts."""
        return Counter(e.run for e in self.entries() if e.event == RETURNED)

    # --- checks -------------------------------------------------------------------------

    def assert_no_attempt_started_twice(self) -> None:
        twice = {key: n for key, n in self.count(START).items() if n > 1}
        assert not twice, f"attempts started more than once (two pods for one attempt): {twice}"

    def assert_each_returned_once(self, runs: Iterable[str], context: str = "") -> None:
        """Every run's body returned exactly once: none lost, none executed again."""
        returned = self.returned_runs()
        wrong = {run: returned.get(run, 0) for run in runs if returned.get(run, 0) != 1}
        assert not wrong, f"bodies that did not return exactly once {context}: {wrong}"

    def assert_not_executed_after_success(
        self, runs: Mapping[str, Mapping[str, Any]], context: str = ""
    ) -> None:
        """No attempt after the one that completed a run; a body that returned in an earlier
        attempt returned without reporting (its attempt is recorded as not completed).

        `runs`: the TaskRuns as the cluster holds them, by name.
        """
        started = self.count(START)
        returned = self.count(RETURNED)
        problems: list[str] = []
        for name, run in runs.items():
            status = run.get("status") or {}
            attempts = status.get("attempts") or []
            completed = [a["number"] for a in attempts if a.get("reason") == "Completed"]
            if len(completed) > 1:
                problems.append(f"{name}: attempts {completed} all completed")
            if status.get("phase") == "Completed" and completed != [status.get("attempt")]:
                problems.append(f"{name}: completed by {completed}, ended on {status['attempt']}")
            if not completed:
                continue
            last = completed[-1]
            later = sorted(a for (run, a) in started if run == name and a > last)
            if later:
                problems.append(f"{name}: attempts {later} started after attempt {last} completed")
            for number in sorted(a for (run, a) in returned if run == name and a != last):
                reason = next((a.get("reason") for a in attempts if a["number"] == number), None)
                if reason == "Completed":
                    problems.append(f"{name}: attempt {number} returned and completed, then ran")
        assert not problems, f"executions after a success {context}: {problems}"

    def assert_completions_returned(
        self, runs: Mapping[str, Mapping[str, Any]], context: str = ""
    ) -> None:
        """The attempt that completed each Completed run is one whose body returned, once: the
        stack recorded a success that really happened, and only one execution of it."""
        returned = self.count(RETURNED)
        problems = {
            name: returned.get((name, run["status"]["attempt"]), 0)
            for name, run in runs.items()
            if run["status"].get("phase") == "Completed"
            and returned.get((name, run["status"]["attempt"]), 0) != 1
        }
        assert not problems, (
            f"completing attempts whose body did not return once {context}: {problems}"
        )
