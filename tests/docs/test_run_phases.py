"""The docs' lists of a run's phases name every status a run can show, and nothing else.

A run shows its `RunPhase` (the operator's), or `Pending` before the operator gave it one
(the API's and the CLI's word; kubectl shows no status then). The README lists them all,
`docs/kubectl.md` the phases kubectl's STATUS column shows, and says what an empty one is.
"""

from __future__ import annotations

import re
from pathlib import Path

from podtask._contract.resources import PENDING_STATUS, RunPhase
from podtask_api.api_models import RunStatus

ROOT = Path(__file__).resolve().parents[2]
PHASES = {phase.value for phase in RunPhase}


def listed(path: Path, opening: str) -> set[str]:
    """The `CapitalisedWords` in backticks of the sentence of `path` that starts with
    `opening` (to its first full stop)."""
    text = " ".join(path.read_text().split())
    start = text.index(opening)
    end = re.compile(r"\.(\s|$)").search(text, start)
    assert end is not None
    return set(re.findall(r"`([A-Z][A-Za-z]+)`", text[start : end.start()]))


def test_the_api_shows_a_phase_or_pending() -> None:
    assert {status.value for status in RunStatus} == PHASES | {PENDING_STATUS}


def test_the_readme_lists_every_status_a_run_can_show() -> None:
    assert listed(ROOT / "README.md", "Phases:") == PHASES | {PENDING_STATUS}


def test_the_kubectl_page_lists_every_phase_and_says_what_no_status_is() -> None:
    page = ROOT / "docs" / "kubectl.md"
    assert listed(page, "`STATUS` is the phase:") - {"STATUS"} == PHASES
    assert listed(page, "A run with no status yet") == {PENDING_STATUS}
