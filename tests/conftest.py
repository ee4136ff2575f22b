"""Fixtures shared across components: registered here so that one instance serves the session."""

from tests.embedded_kube import embedded_kube
from tests.real_control_plane import real_control_plane

__all__ = ["embedded_kube", "real_control_plane"]
