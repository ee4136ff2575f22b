"""podtask's kopf operator: one pod per attempt of a TaskRun, and the pod's end as the run's status.

Layers: pure decisions (`pods`, `attempts`, `lifecycle`), a thin Kubernetes layer
(`cluster`), the reconcile flow that joins them (`reconcile`) and the kopf
handlers that only dispatch to it (`handlers`).
"""
