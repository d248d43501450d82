{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "natsforge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "natsforge.fullname" -}}
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

{{- define "natsforge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "natsforge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "natsforge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "natsforge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "natsforge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "natsforge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference: repository:tag, or repository:tag@digest when a digest is set. */}}
{{- define "natsforge.image" -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) }}
{{- with .image.digest }}@{{ . }}{{ end }}
{{- end }}

{{- define "natsforge.operatorImage" -}}
{{- include "natsforge.image" (dict "image" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{- define "natsforge.brokerImage" -}}
{{- include "natsforge.image" (dict "image" .Values.broker.image "appVersion" .Chart.AppVersion) }}
{{- end }}
