{{/* The chart name, truncated to a DNS label. */}}
{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's resources. */}}
{{- define "gatehouse.fullname" -}}
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

{{/* chart-version label value. */}}
{{- define "gatehouse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ include "gatehouse.chart" . }}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pod. */}}
{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount's name. */}}
{{- define "gatehouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gatehouse.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The PersistentVolumeClaim the database lives on. */}}
{{- define "gatehouse.claimName" -}}
{{- default (include "gatehouse.fullname" .) .Values.persistence.existingClaim }}
{{- end }}

{{/* The database file, inside the claim's mount. */}}
{{- define "gatehouse.databasePath" -}}
{{- if .Values.database.url }}
{{- .Values.database.url }}
{{- else }}
{{- printf "%s/gatehouse.sqlite" (trimSuffix "/" .Values.persistence.mountPath) }}
{{- end }}
{{- end }}

{{/* Whether the replicas share PostgreSQL (else one replica on SQLite). */}}
{{- define "gatehouse.postgres" -}}
{{- if .Values.database.url }}true{{ end }}
{{- end }}

{{/* The image reference. */}}
{{- define "gatehouse.image" -}}
{{- $_ := required "image.repository is not set: no Gatehouse image is published, so build one with the repository's Dockerfile, push it to a registry your cluster can pull from, and install with --set image.repository=REGISTRY/gatehouse (README, \"Install on Kubernetes\")" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding the access file and secrets, if any. */}}
{{- define "gatehouse.secretName" -}}
{{- default (include "gatehouse.fullname" .) .Values.security.existingSecret }}
{{- end }}

{{/* Whether a Secret is in use (created by the chart or existing). */}}
{{- define "gatehouse.hasSecret" -}}
{{- if or .Values.security.existingSecret .Values.security.accessFile .Values.security.flaggerToken .Values.security.slackSigningSecret .Values.security.linkSecret .Values.security.sessionSecret .Values.security.oidcClientSecret .Values.notifications.file }}true{{- end }}
{{- end }}

{{/* Whether an access file is mounted. */}}
{{- define "gatehouse.hasAccessFile" -}}
{{- if or .Values.security.existingSecret .Values.security.accessFile }}true{{- end }}
{{- end }}

{{/* Whether a notifications file is mounted. */}}
{{- define "gatehouse.hasNotifications" -}}
{{- if or .Values.notifications.file (and .Values.security.existingSecret .Values.notifications.fromExistingSecret) }}true{{- end }}
{{- end }}
