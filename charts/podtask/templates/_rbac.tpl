{{/*
RBAC rules: exactly the calls each component makes (tests/chart/test_chart_rbac.py keeps
the same list; tests/chart/test_chart_cluster.py runs both components under them). No
wildcards. A Role holds them in the task namespace; with rbac.clusterWide a ClusterRole.
Nothing at cluster scope: the operator serves one namespace and kopf does not scan
namespaces or CRDs (handlers.configure turns that off).
*/}}

{{- define "podtask.operatorRules" -}}
# TaskRuns: kopf lists and watches them; the reconciler reads one and lists them at start;
# housekeeping deletes finished runs after retention.runSeconds; a schedule's tick creates
# its run.
- apiGroups: ["podtask.dev"]
  resources: ["taskruns"]
  verbs: ["get", "list", "watch", "create", "delete"]
# The run's phase, attempts, conditions: the operator writes only the status subresource.
- apiGroups: ["podtask.dev"]
  resources: ["taskruns/status"]
  verbs: ["patch"]
# Each attempt's pod and token Secret are owned by their TaskRun with blockOwnerDeletion
# (the run's foreground deletion waits for them). Under the OwnerReferencesPermissionEnforcement
# admission plugin (OpenShift enables it) setting that needs `update` on the owner's
# finalizers subresource; nothing is ever written there.
- apiGroups: ["podtask.dev"]
  resources: ["taskruns/finalizers"]
  verbs: ["update"]
# TaskQueues: kopf lists and watches them (limits and pauses apply at once).
- apiGroups: ["podtask.dev"]
  resources: ["taskqueues"]
  verbs: ["list", "watch"]
# The queue's running and queued counts.
- apiGroups: ["podtask.dev"]
  resources: ["taskqueues/status"]
  verbs: ["patch"]
# TaskSchedules: kopf lists and watches them (each tick waits on the watch's latest); the
# ticker writes only their status (last and next tick, Ready).
- apiGroups: ["podtask.dev"]
  resources: ["taskschedules"]
  verbs: ["list", "watch"]
- apiGroups: ["podtask.dev"]
  resources: ["taskschedules/status"]
  verbs: ["patch"]
# Tasks: a schedule's tick reads its task, whose run it triggers.
- apiGroups: ["podtask.dev"]
  resources: ["tasks"]
  verbs: ["get"]
# One pod per attempt: created, read back, watched to classify the attempt, deleted on
# cancel or maxDuration and by housekeeping.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
# One Secret per attempt holds its runner token, so that the pod's spec only names it:
# created just before the pod (an existing one is reused), never read back; the garbage
# collector deletes it with its TaskRun. A create cannot be limited by name.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
# Events on TaskRuns (why a run waits or ended) and kopf's own warnings.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Batch markers: a batch's runs are held until its marker says committed (read, watched
# through a label selector); housekeeping deletes the markers of abandoned batches (their
# runs go with them).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "delete"]
# Leader election: kopf lists and watches Leases (their renewals are the health probe's
# heartbeat); the elector creates its Lease once. A create cannot be limited by name.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["list", "watch", "create"]
# ... and reads and renews only its own Lease.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "podtask.leaseName" . | quote }}]
  verbs: ["get", "update"]
{{- end -}}

{{- define "podtask.apiRules" -}}
# TaskRuns: triggers create them, reads get and list them, the event streams watch them,
# cancel/replay/reschedule patch them, and a batch trigger that fails half-way deletes the
# runs it created.
- apiGroups: ["podtask.dev"]
  resources: ["taskruns"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The runner's report of an attempt (output or error) goes into the run's status.
- apiGroups: ["podtask.dev"]
  resources: ["taskruns/status"]
  verbs: ["patch"]
# Tasks: watched, for every trigger reads its task (task_catalog); POST /api/v1/deployments
# makes them the manifest's tasks.
- apiGroups: ["podtask.dev"]
  resources: ["tasks"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# TaskQueues: read, paused, limited, created by deployments, and deleted by one once no
# longer declared and no unfinished run names them (it lists the runs labelled with them).
- apiGroups: ["podtask.dev"]
  resources: ["taskqueues"]
  verbs: ["get", "list", "create", "patch", "delete"]
# TaskSchedules: a deployment makes the DECLARATIVE ones its tasks' declared schedules
# (created, patched, the undeclared deleted); /api/v1/schedules reads, lists, creates,
# patches (changes, activate, deactivate) and deletes them.
- apiGroups: ["podtask.dev"]
  resources: ["taskschedules"]
  verbs: ["get", "list", "create", "patch", "delete"]
# An attempt's pod and its log, for GET /api/v1/runs/{id}/logs.
- apiGroups: [""]
  resources: ["pods", "pods/log"]
  verbs: ["get"]
# The Events of a run and its pods, for GET /api/v1/runs/{id}/kubernetes-events.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
# Deployment records: one ConfigMap per deployed version (listed, created, and deleted when
# the registration behind it fails). Batch markers: one ConfigMap per batch trigger,
# created open, read by a retry, patched once to commit it, deleted when it fails.
# Attempts' logs: ConfigMaps of 64 KiB each, owned by the TaskRun (the garbage collector
# deletes them with it), created and patched as the runner sends its output, listed to read
# a log, deleted when a long log's middle falls out of its tail.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "create", "patch", "delete"]
# The API keys' digests: only that one Secret, read, and replaced when the dashboard (the
# API's /api/v1/keys) creates or revokes a key. Not created: the chart does that (or
# apiKeys.existingSecret names one).
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: [{{ include "podtask.apiKeysSecret" . | quote }}]
  verbs: ["get", "update"]
{{- end -}}
