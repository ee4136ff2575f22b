"""How `podtask dev` restarts one of its parts that died: when, and how it says why.

Pure decisions, no processes: `dev` does the starting and stopping.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field


@dataclass
class RestartBackoff:
    """The delay before each restart: `first`, doubling up to `maximum`; back to `first` once
    the part stayed up `stable_after` seconds (a crash now and then is not a crash loop)."""

    first: float = 0.5
    factor: float = 2.0
    maximum: float = 10.0
    stable_after: float = 30.0
    _next: float = field(default=0.0, init=False)

    def after_exit(self, uptime: float) -> float:
        """The delay before starting the part again, given how long it stayed up."""
        if self._next == 0.0 or uptime >= self.stable_after:
            self._next = self.first
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay


def describe_exit(returncode: int) -> str:
    """`exited with code 1`, `was killed by SIGKILL`: a Popen return code in words."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"was killed by {name}"


def restart_notice(part: str, returncode: int, delay: float) -> str:
    return f"the {part} {describe_exit(returncode)}; restarting it in {delay:g} s"
