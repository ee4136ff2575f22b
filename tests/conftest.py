"""Fixtures shared across components: registered here so that one instance serves the session."""

from tests.embedded_kube import embedded_kube

__all__ = ["embedded_kube"]
