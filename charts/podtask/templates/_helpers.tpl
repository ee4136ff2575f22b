{{/* Names: 63 characters at most (DNS labels), as Kubernetes wants for most names. */}}
{{- define "podtask.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "podtask.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>", the component's suffix kept whole. */}}
{{- define "podtask.component" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- printf "%s-%s" (include "podtask.fullname" $root | trunc (int (sub 62 (len $component))) | trimSuffix "-") $component -}}
{{- end -}}

{{- define "podtask.taskNamespace" -}}
{{- default .Release.Namespace .Values.taskNamespace -}}
{{- end -}}

{{- define "podtask.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "podtask.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "podtask.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: podtask
{{- end -}}

{{/* Labels of one component's objects; its selector labels are the stable subset. */}}
{{- define "podtask.componentLabels" -}}
{{- $root := index . 0 -}}
{{ include "podtask.labels" $root }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "podtask.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "podtask.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "podtask.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "podtask.component" (list . "operator")) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "podtask.apiServiceAccount" -}}
{{- if .Values.api.serviceAccount.create -}}
{{- default (include "podtask.component" (list . "api")) .Values.api.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.api.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "podtask.leaseName" -}}
{{- default (include "podtask.component" (list . "operator")) .Values.operator.leaderElection.leaseName -}}
{{- end -}}

{{- define "podtask.runnerTokenSecret" -}}
{{- default (include "podtask.component" (list . "runner-token")) .Values.runnerToken.existingSecret -}}
{{- end -}}

{{/*
The API-key Secret: podtask-api-keys, the name the API and `podtask keys` use by default, so
that `podtask keys create --namespace <task namespace>` needs no --secret. One release per
task namespace, so the fixed name cannot clash.
*/}}
{{- define "podtask.apiKeysSecret" -}}
{{- default "podtask-api-keys" .Values.apiKeys.existingSecret -}}
{{- end -}}

{{- define "podtask.apiServiceName" -}}
{{- include "podtask.component" (list . "api") -}}
{{- end -}}

{{/* The API's address as task pods reach it: the operator hands it to every pod. */}}
{{- define "podtask.apiInternalUrl" -}}
{{- if .Values.api.internalUrl -}}
{{- .Values.api.internalUrl -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%v" (include "podtask.apiServiceName" .) .Release.Namespace .Values.api.service.port -}}
{{- end -}}
{{- end -}}

{{/* The env entry that both components read the shared HMAC secret from. */}}
{{- define "podtask.runnerTokenEnv" -}}
- name: PODTASK_RUNNER_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "podtask.runnerTokenSecret" . }}
      key: {{ .Values.runnerToken.secretKey }}
{{- end -}}

{{/*
Checks that values.schema.json cannot express (they relate two values). Rendered from
validate.yaml, so that a bad combination fails every render and install with a message.
*/}}
{{- define "podtask.validate" -}}
{{- $election := .Values.operator.leaderElection -}}
{{- if and (gt (int .Values.operator.replicas) 1) (not $election.enabled) -}}
{{- fail (printf "operator.replicas is %v but operator.leaderElection.enabled is false: more than one replica needs leader election, or two operators would act at once" .Values.operator.replicas) -}}
{{- end -}}
{{- if gt (mulf $election.renewSeconds 2.0) (float64 $election.durationSeconds) -}}
{{- fail (printf "operator.leaderElection.renewSeconds (%v) must be at most half of operator.leaderElection.durationSeconds (%v)" $election.renewSeconds $election.durationSeconds) -}}
{{- end -}}
{{- if and .Values.apiKeys.existingSecret (or .Values.apiKeys.bootstrap .Values.apiKeys.bootstrapSha256) -}}
{{- fail "apiKeys.bootstrap and apiKeys.bootstrapSha256 go into the Secret the chart creates: with apiKeys.existingSecret, add keys to that Secret with `podtask keys create` instead" -}}
{{- end -}}
{{- if and .Values.apiKeys.bootstrap .Values.apiKeys.bootstrapSha256 -}}
{{- fail "set apiKeys.bootstrap or apiKeys.bootstrapSha256, not both" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.public) (not .Values.serviceMonitor.apiKeySecret.name) -}}
{{- fail "serviceMonitor.enabled: the API's /metrics needs an API key; set serviceMonitor.apiKeySecret.name to a Secret (in the release namespace) holding a read-only key (podtask keys create --name prometheus --read-only), or metrics.public=true to serve them without one" -}}
{{- end -}}
{{- end -}}
