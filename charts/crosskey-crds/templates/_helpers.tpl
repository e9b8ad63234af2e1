{{/* Labels of every object of this chart. */}}
{{- define "crosskey-crds.labels" -}}
app.kubernetes.io/name: crosskey
app.kubernetes.io/component: crds
app.kubernetes.io/part-of: crosskey
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}
