"""The Kubernetes versions podtask supports: the minor versions upstream supports today
(1.34 to 1.37). The chart, the CRDs and every object podtask creates are validated against
the official schemas of each (PyPI `kubernetes-validate`, which must know them all)."""

SUPPORTED_KUBERNETES_VERSIONS = ["1.34.0", "1.35.0", "1.36.0", "1.37.0"]
