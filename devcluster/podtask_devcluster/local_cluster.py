"""`LocalCluster`: what the embedded cluster (`cluster.EmbeddedCluster`) and the real control
plane (`control_plane.ControlPlane`) are to whoever runs one in this process: started, used
at `url`, stopped; a `with` block starts it and stops it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self


class LocalCluster(ABC):
    @property
    @abstractmethod
    def url(self) -> str:
        """Where its API server answers (RuntimeError before it has started)."""

    @property
    @abstractmethod
    def running(self) -> bool: ...

    @abstractmethod
    def start(self) -> Self:
        """Return once it serves (at once if it already does)."""

    @abstractmethod
    def stop(self) -> None:
        """End it; what it keeps under its state directory stays for the next start."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
