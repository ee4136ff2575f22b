"""`bench/results.py`: a figure that two benchmarks measure is the worse of the two."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import results


def test_a_figure_measured_twice_is_the_worse_and_keeps_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results, "RESULTS", tmp_path / "results.json")
    goal = results.Goal("<", 150)
    results.record_worst("p5", "admission", "with 10,000 waiting", 183.0, goal, {"runs": 10_040})
    entry = results.record_worst(
        "p5", "scale", "on the simulated node", 146.0, goal, {"runs": 10_000}, rss_mb_100k=390.0
    )
    assert entry["value"] == 183.0 and entry["met"] is False
    assert entry["raw"]["worst"] == "admission"
    assert entry["raw"]["measured"]["scale"] == {
        "what": "on the simulated node",
        "value": 146.0,
        "runs": 10_000,
    }
    assert entry["rss_mb_100k"] == 390.0
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["p5"] == entry


def test_a_figure_that_must_be_high_keeps_the_lowest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results, "RESULTS", tmp_path / "results.json")
    goal = results.Goal(">=", 100)
    results.record_worst("p7", "a", "a", 120.0, goal, {})
    assert results.record_worst("p7", "b", "b", 80.0, goal, {})["value"] == 80.0
    assert results.record_worst("p7", "c", "c", 90.0, goal, {})["value"] == 80.0


def test_a_figure_with_goals_for_its_further_figures_meets_only_all_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results, "RESULTS", tmp_path / "results.json")
    five = {"cpu_ms_per_admission": results.Goal("<=", 5)}
    ratio = results.Goal("<=", 1.2)
    entry = results.record(
        "p2", "ratio", 1.1, ratio, {}, figure_goals=five, cpu_ms_per_admission=9.0
    )
    assert entry["goal"] == "<= 1.2; cpu_ms_per_admission <= 5" and entry["met"] is False
    entry = results.record(
        "p2", "ratio", 1.1, ratio, {}, figure_goals=five, cpu_ms_per_admission=4.5
    )
    assert entry["met"] is True and entry["cpu_ms_per_admission"] == 4.5
    assert (
        results.record("p2", "ratio", 1.3, ratio, {}, figure_goals=five, cpu_ms_per_admission=4.5)[
            "met"
        ]
        is False
    )
