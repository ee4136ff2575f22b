"""A task that says, at its first line, which modules the runner had imported before it ran
(`test_runner_startup`). The module imports only what a task author's plainest module does."""

from __future__ import annotations

import sys
from typing import Any

from podtask import Context, task


@task(id="runner-startup-modules", retry={"max_attempts": 1})
def loaded_modules(payload: Any, ctx: Context) -> list[str]:
    return sorted(sys.modules)
