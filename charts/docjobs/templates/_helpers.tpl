{{/* Names, labels and the few values several templates derive the same way. */}}

{{- define "docjobs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "docjobs.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "docjobs.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "docjobs.labels" -}}
helm.sh/chart: {{ include "docjobs.chart" . }}
{{ include "docjobs.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "docjobs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "docjobs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: (dict "ctx" $ "component" "api"). */}}
{{- define "docjobs.componentLabels" -}}
{{ include "docjobs.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "docjobs.componentSelector" -}}
{{ include "docjobs.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* ServiceAccount name of a component: (dict "ctx" $ "component" "api"). */}}
{{- define "docjobs.serviceAccountName" -}}
{{- $sa := index .ctx.Values.serviceAccounts .component }}
{{- if $sa.name }}{{ $sa.name }}{{ else if $sa.create }}{{ printf "%s-%s" (include "docjobs.fullname" .ctx) .component }}{{ else }}default{{ end }}
{{- end }}

{{/* repository:tag or repository@digest of the docjobs image. */}}
{{- define "docjobs.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "docjobs.runnerImage" -}}
{{- if .Values.runner.image.repository }}
{{- printf "%s:%s" .Values.runner.image.repository (default .Chart.AppVersion .Values.runner.image.tag) }}
{{- else }}
{{- include "docjobs.image" . }}
{{- end }}
{{- end }}

{{- define "docjobs.runnerGpuImage" -}}
{{- printf "%s:%s" .Values.runner.gpuImage.repository (default .Chart.AppVersion .Values.runner.gpuImage.tag) }}
{{- end }}

{{/* Secret names: the user's existing one, else the chart's. */}}
{{- define "docjobs.s3SecretName" -}}
{{- default (printf "%s-s3" (include "docjobs.fullname" .)) .Values.s3.existingSecret }}
{{- end }}

{{- define "docjobs.apiKeysSecretName" -}}
{{- default (printf "%s-api-keys" (include "docjobs.fullname" .)) .Values.apiKeys.existingSecret }}
{{- end }}

{{- define "docjobs.webhooksSecretName" -}}
{{- default (printf "%s-webhooks" (include "docjobs.fullname" .)) .Values.webhooks.existingSecret }}
{{- end }}

{{/* The Claude key's Secret, or nothing when no key is configured. */}}
{{- define "docjobs.llmSecretName" -}}
{{- if .Values.llm.existingSecret }}{{ .Values.llm.existingSecret }}
{{- else if .Values.llm.apiKey }}{{ printf "%s-llm" (include "docjobs.fullname" .) }}
{{- end }}
{{- end }}

{{- define "docjobs.minioSecretName" -}}
{{- default (printf "%s-minio" (include "docjobs.fullname" .)) .Values.minio.existingSecret }}
{{- end }}

{{- define "docjobs.minioHost" -}}
{{- printf "%s-minio.%s.svc:9000" (include "docjobs.fullname" .) .Release.Namespace }}
{{- end }}

{{/* DOCJOBS_S3__* from the S3 Secret, for the API and the operator. */}}
{{- define "docjobs.s3Env" -}}
{{- $secret := include "docjobs.s3SecretName" . }}
{{- range $env, $key := dict "ENDPOINT" "endpoint" "BUCKET" "bucket" "ACCESS_KEY" "accessKey" "SECRET_KEY" "secretKey" "SECURE" "secure" "REGION" "region" }}
- name: DOCJOBS_S3__{{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
      {{- if has $key (list "bucket" "secure" "region") }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}

{{/* The namespace every pod works in, from the downward API. */}}
{{- define "docjobs.podNamespaceEnv" -}}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* "true" when the chart deploys a worker Deployment: replicas, or an autoscaler that
may scale it up from zero. cpuWorkers: `workers` (the shared image's engines); gpuWorkers:
`gpuWorkers` (docTR); workersEnabled: either, for what both share (ServiceAccount, Role). */}}
{{- define "docjobs.cpuWorkersEnabled" -}}
{{- if or (gt (int .Values.workers.replicas) 0) .Values.workers.autoscaled }}true{{ end }}
{{- end }}

{{- define "docjobs.gpuWorkersEnabled" -}}
{{- if or (gt (int .Values.gpuWorkers.replicas) 0) .Values.gpuWorkers.autoscaled }}true{{ end }}
{{- end }}

{{- define "docjobs.workersEnabled" -}}
{{- if or (include "docjobs.cpuWorkersEnabled" .) (include "docjobs.gpuWorkersEnabled" .) }}true{{ end }}
{{- end }}

{{/* The engines the shared image's worker pods claim (WorkerPodSettings' default). */}}
{{- define "docjobs.cpuWorkerEngines" -}}
{{- list "convert" "tesseract" "vision" "extract" "office" | toJson }}
{{- end }}

{{/* Every engine some worker pod claims, as a JSON list: the operator leaves only their
jobs to the workers for the claim grace. */}}
{{- define "docjobs.claimedEngines" -}}
{{- $engines := list }}
{{- if include "docjobs.cpuWorkersEnabled" . }}
{{- $engines = concat $engines (include "docjobs.cpuWorkerEngines" . | fromJsonArray) }}
{{- end }}
{{- if include "docjobs.gpuWorkersEnabled" . }}
{{- $engines = append $engines "doctr" }}
{{- end }}
{{- $engines | toJson }}
{{- end }}
