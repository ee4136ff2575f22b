"""Which clusters the cluster-level suites (end-to-end, chart, kubectl) run against.

Both, by default: the embedded cluster and the real control plane. `PODTASK_TEST_CLUSTERS`
(comma-separated: `embedded`, `real`) narrows it for a quicker loop.
"""

from __future__ import annotations

import os

KNOWN = ("embedded", "real")


def _chosen() -> list[str]:
    raw = os.environ.get("PODTASK_TEST_CLUSTERS", ",".join(KNOWN))
    chosen = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in KNOWN]
    if unknown or not chosen:
        raise ValueError(f"PODTASK_TEST_CLUSTERS={raw!r}: choose from {', '.join(KNOWN)}")
    return chosen


CLUSTERS = _chosen()
