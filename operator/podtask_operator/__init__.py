"""podtask's kopf operator: one pod per attempt of a TaskRun, and the pod's end as the run's status.

Layers: pure decisions (`pods`, `attempts`, `lifecycle`), a thin Kubernetes layer
(`cluster`), the reconcile flow that joins them (`reconcile`) and the kopf
handlers that only dispatch to it (`handlers`).

Importing the package imports kopf without the official Kubernetes client: when that client is
installed (it is, for the API), kopf imports it to recognise the client's objects, which the
operator never hands it, and its default registry to offer a login through it, which the
operator does not use: it logs kopf in itself (`handlers.login`, `kube_login`). The client is
about 20 MB of the operator's memory.
"""

import sys


def _import_kopf_without_the_official_client() -> None:
    if "kopf" in sys.modules or "kubernetes" in sys.modules:
        return  # a process that has them already (a test's) gains nothing
    # None in sys.modules makes `import kubernetes` raise ImportError, which kopf expects of
    # a client that is not installed.
    sys.modules["kubernetes"] = None  # type: ignore[assignment]
    try:
        import kopf

        kopf.get_default_registry()
    finally:
        del sys.modules["kubernetes"]


_import_kopf_without_the_official_client()
