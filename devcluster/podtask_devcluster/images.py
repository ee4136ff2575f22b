"""Which images the node agent has. It never pulls: a container whose image is not in its
configured list is a failed pull (ErrImagePull, then ImagePullBackOff), as on a node that
cannot reach the registry. Patterns use shell wildcards (`python:*`, `*/runner:*`); with no
list, every image is present (the embedded cluster's behaviour)."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

IMAGES_ENV = "PODTASK_NODE_IMAGES"


@dataclass(frozen=True)
class ImageSet:
    patterns: tuple[str, ...] | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ImageSet:
        """`PODTASK_NODE_IMAGES`: comma- or space-separated patterns; unset means all."""
        text = (environ if environ is not None else dict(os.environ)).get(IMAGES_ENV)
        if text is None:
            return cls(None)
        return cls(tuple(part for part in text.replace(",", " ").split() if part))

    def has(self, image: str) -> bool:
        if self.patterns is None:
            return True
        return any(fnmatch.fnmatchcase(image, pattern) for pattern in self.patterns)

    def pull_error(self, image: str, node: str) -> str:
        """What the failed pull says (the waiting message and the Failed event)."""
        return (
            f'rpc error: code = NotFound desc = failed to pull image "{image}": node {node} '
            "does not pull images and does not have this one (its images: "
            f"{', '.join(self.patterns or ())}; {IMAGES_ENV})"
        )
