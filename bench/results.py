"""`bench/results.json`: every figure `make bench` measures, under its key (`p1` … `p7`, the
goals in bench/README.md), with its goal, whether it meets it, and the raw
numbers it was worked out from; and the line each benchmark prints for it.

Each benchmark records its own keys as it ends (`record`); `make bench` starts from an empty
file, so a figure in it was measured in that run. A figure that more than one benchmark
measures (`p5`: the operator's memory in two stacks) is the worst of their measurements
(`record_worst`), each kept in its `raw`.
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(os.environ.get("PODTASK_BENCH_RESULTS", Path(__file__).parent / "results.json"))

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Goal:
    """What a figure must be: `value <comparison> bound`."""

    comparison: str
    bound: float

    def __post_init__(self) -> None:
        if self.comparison not in _COMPARISONS:
            raise ValueError(f"a goal compares with one of {sorted(_COMPARISONS)}")

    def met(self, value: float) -> bool:
        return _COMPARISONS[self.comparison](value, self.bound)

    def __str__(self) -> str:
        return f"{self.comparison} {self.bound:g}"


def record(
    key: str,
    what: str,
    value: float,
    goal: Goal,
    raw: Mapping[str, Any],
    *,
    figure_goals: Mapping[str, Goal] | None = None,
    **figures: float,
) -> dict[str, Any]:
    """Write figure `key` into `RESULTS` (keeping the others) and print its line; the entry.

    `figures` are further named figures of the same measurement (e.g. `p2`'s
    `cpu_ms_per_admission`), kept beside `value`; `figure_goals`, the goals some of them must
    meet too for the figure to meet its own (p2: the ratio and the CPU an admission).
    """
    also = dict(figure_goals or {})
    entry: dict[str, Any] = {
        "what": what,
        "value": value,
        "goal": "; ".join([str(goal), *(f"{name} {g}" for name, g in also.items())]),
        "met": goal.met(value) and all(g.met(figures[name]) for name, g in also.items()),
        **figures,
        "raw": dict(raw),
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[key] = entry
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    verdict = "meets" if entry["met"] else "MISSES"
    shown = "".join(f", {name} {figures[name]:.3g}" for name in also)
    print(f"{key}: {what}: {value:.3g}{shown} (goal {entry['goal']}: {verdict})", flush=True)
    return entry


def _worse(goal: Goal, a: float, b: float) -> bool:
    """Whether `a` is further from meeting `goal` than `b`."""
    return a > b if goal.comparison in ("<", "<=") else a < b


def record_worst(
    key: str,
    source: str,
    what: str,
    value: float,
    goal: Goal,
    raw: Mapping[str, Any],
    **figures: float,
) -> dict[str, Any]:
    """Record `source`'s measurement of figure `key`, which other benchmarks of the same run
    measure too: the figure is the worst of them, and `raw["measured"]` holds each (what it
    was, its value and raw numbers) under its source. Figures given beside a value are kept
    from every source."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    earlier = results.get(key) or {}
    measured = dict((earlier.get("raw") or {}).get("measured") or {})
    measured[source] = {"what": what, "value": value, **raw}
    kept = {
        name: figure
        for name, figure in earlier.items()
        if name not in ("what", "value", "goal", "met", "raw")
    }
    worst = source
    for other, measurement in measured.items():
        if _worse(goal, measurement["value"], measured[worst]["value"]):
            worst = other
    what_of_worst = measured[worst]["what"]
    if len(measured) > 1:
        what_of_worst += f" (the worst of {len(measured)} measurements)"
    return record(
        key,
        what_of_worst,
        measured[worst]["value"],
        goal,
        {"worst": worst, "measured": measured},
        **{**kept, **figures},
    )
