{{/* The chart's name, or nameOverride. */}}
{{- define "flowhooks.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's name for its objects (at most 63 characters, less a suffix of ours). */}}
{{- define "flowhooks.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "flowhooks.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "flowhooks.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "flowhooks.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flowhooks.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: call with (dict "root" $ "component" "receiver"). */}}
{{- define "flowhooks.componentLabels" -}}
{{ include "flowhooks.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "flowhooks.componentSelectorLabels" -}}
{{ include "flowhooks.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "flowhooks.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flowhooks.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image: by digest when image.digest is set (what was tested is what runs, whatever the
     tag now points at), else by tag (the chart's appVersion unless image.tag is set). */}}
{{- define "flowhooks.image" -}}
{{- with .Values.image.digest }}
{{- printf "%s@%s" $.Values.image.repository . }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The label matchers of each process's series in Prometheus, for the alert rules and the
     dashboard: metricsSelectors.receiver / .worker, else the job the ServiceMonitors give
     (the Service's name) in the release's namespace. Call with (dict "root" $ "component" "worker"). */}}
{{- define "flowhooks.metricsSelector" -}}
{{- $given := get .root.Values.metricsSelectors .component }}
{{- if $given }}
{{- $given }}
{{- else }}
{{- $service := ternary "worker-metrics" "receiver" (eq .component "worker") }}
{{- printf "job=\"%s-%s\", namespace=\"%s\"" (include "flowhooks.fullname" .root) $service .root.Release.Namespace }}
{{- end }}
{{- end }}

{{/* The Secret the processes read their secret environment from. */}}
{{- define "flowhooks.secretName" -}}
{{- default (include "flowhooks.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* The config file's text: values.config is the file as a string, or a mapping to write. */}}
{{- define "flowhooks.configText" -}}
{{- if kindIs "string" .Values.config }}
{{- .Values.config }}
{{- else }}
{{- toYaml .Values.config }}
{{- end }}
{{- end }}

{{/* What rolls the pods: the config's checksum, and the chart-made Secret's. */}}
{{- define "flowhooks.checksums" -}}
checksum/config: {{ include "flowhooks.configText" . | sha256sum }}
{{- if not .Values.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/* The strict securityContext of every container. */}}
{{- define "flowhooks.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "flowhooks.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Environment shared by the receiver, the worker and the config check. */}}
{{- define "flowhooks.env" -}}
- name: FLOWHOOKS_CONFIG
  value: /etc/flowhooks/flowhooks.yaml
- name: FLOWHOOKS_JOB_TIMEOUT
  value: {{ .Values.jobTimeoutSeconds | quote }}
{{- with .Values.redis.minReplicas }}
- name: FLOWHOOKS_REDIS_MIN_REPLICAS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.redis.waitTimeout }}
- name: FLOWHOOKS_REDIS_WAIT_TIMEOUT
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{- define "flowhooks.envFrom" -}}
- secretRef:
    name: {{ include "flowhooks.secretName" . }}
{{- end }}

{{- define "flowhooks.volumeMounts" -}}
- name: config
  mountPath: /etc/flowhooks
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* The config file and, when secretFiles.secretName is set, that Secret's keys under
     /etc/flowhooks/secrets/ (the config refers to them as {file: secrets/KEY}). */}}
{{- define "flowhooks.volumes" -}}
- name: config
  projected:
    defaultMode: 0440
    sources:
      - configMap:
          name: {{ include "flowhooks.fullname" . }}
          items:
            - key: flowhooks.yaml
              path: flowhooks.yaml
      {{- with .Values.secretFiles.secretName }}
      - secret:
          name: {{ . }}
          items:
            {{- range $.Values.secretFiles.keys }}
            - key: {{ . }}
              path: secrets/{{ . }}
            {{- end }}
      {{- end }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/* `flowhooks check-config` before the process starts: a config that does not load (or names
     a secret the environment lacks) stops the pod in Init and so the rollout. */}}
{{- define "flowhooks.checkConfig" -}}
- name: check-config
  image: {{ include "flowhooks.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["check-config", "/etc/flowhooks/flowhooks.yaml"]
  env:
    {{- include "flowhooks.env" . | nindent 4 }}
  envFrom:
    {{- include "flowhooks.envFrom" . | nindent 4 }}
  securityContext:
    {{- include "flowhooks.containerSecurityContext" . | nindent 4 }}
  resources:
    {{- toYaml .Values.checkConfig.resources | nindent 4 }}
  volumeMounts:
    {{- include "flowhooks.volumeMounts" . | nindent 4 }}
{{- end }}
