{{/* A Deployment of warm worker pods (`docjobs workers`) and the Service of their metrics,
shared by the CPU workers (workers.yaml) and the GPU workers (gpu-workers.yaml):
(dict "ctx" $ "component" "workers" "values" .Values.workers "image" "repo:tag"
      "engines" "[\"convert\", ...]" "env" (list (dict "name" ... "value" ...))).
Both use the workers' ServiceAccount, Role and port; each has its own component label, so
the two Deployments' selectors never overlap. */}}
{{- define "docjobs.workers" -}}
{{- $ctx := .ctx -}}
{{- $values := .values -}}
{{- $fullname := include "docjobs.fullname" $ctx -}}
{{- $labels := include "docjobs.componentLabels" (dict "ctx" $ctx "component" .component) -}}
{{- $selector := include "docjobs.componentSelector" (dict "ctx" $ctx "component" .component) -}}
{{- $port := $ctx.Values.workers.port -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}-{{ .component }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  {{- if not $values.autoscaled }}
  replicas: {{ $values.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- $selector | nindent 6 }}
  template:
    metadata:
      labels:
        {{- $labels | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $ctx.Template.BasePath "/configmap.yaml") $ctx | sha256sum }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "docjobs.serviceAccountName" (dict "ctx" $ctx "component" "workers") }}
      {{- with $ctx.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $ctx.Values.podSecurityContext | nindent 8 }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $values.runtimeClassName }}
      runtimeClassName: {{ . }}
      {{- end }}
      # On SIGTERM a pod stops claiming and lets its jobs finish for drainSeconds; what is
      # left goes back to the operator before the kubelet's SIGKILL.
      terminationGracePeriodSeconds: {{ add (int $values.drainSeconds) 15 }}
      containers:
        - name: workers
          image: {{ .image }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          command: ["docjobs"]
          args: ["workers", "--port", "{{ $port }}"]
          ports:
            - name: http
              containerPort: {{ $port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ $fullname }}-config
          env:
            {{- include "docjobs.podNamespaceEnv" $ctx | nindent 12 }}
            {{- include "docjobs.s3Env" $ctx | trim | nindent 12 }}
            # The operator's DOCJOBS_OPERATOR__CLAIMED_ENGINES holds these.
            - name: DOCJOBS_WORKERS__ENGINES
              value: {{ .engines | quote }}
            - name: DOCJOBS_WORKERS__CONCURRENCY
              value: {{ $values.concurrency | quote }}
            - name: DOCJOBS_WORKERS__DRAIN_SECONDS
              value: {{ $values.drainSeconds | quote }}
            # The same claim length as the API's: the operator takes over a dead pod's jobs.
            - name: DOCJOBS_KUBERNETES__CLAIM_SECONDS
              value: {{ $ctx.Values.api.claimSeconds | quote }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          livenessProbe:
            # Fails once the claim loop died.
            httpGet: {path: /healthz, port: http}
            periodSeconds: 10
            failureThreshold: 3
          readinessProbe:
            # Ready once its DocumentJob watch cache is in sync.
            httpGet: {path: /readyz, port: http}
            periodSeconds: 5
            failureThreshold: 2
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $ctx.Values.securityContext | nindent 12 }}
          volumeMounts:
            # Each warm runner process keeps its attempts' scratch here.
            - {name: tmp, mountPath: /tmp}
      volumes:
        - name: tmp
          emptyDir: {}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
# The workers' metrics, for a ServiceMonitor or a plain scrape config.
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}-{{ .component }}-metrics
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- $selector | nindent 4 }}
  ports:
    - name: http
      port: {{ $port }}
      targetPort: http
      protocol: TCP
{{- end }}
