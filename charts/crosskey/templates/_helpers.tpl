{{- define "crosskey.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "crosskey.fullname" -}}
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

{{- define "crosskey.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crosskey.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "crosskey.labels" -}}
{{ include "crosskey.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: crosskey
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "crosskey.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "crosskey.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "crosskey.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "crosskey.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/*
The namespaces the operator watches, comma-separated; empty means all. With
installScope "namespace" it is never empty: it defaults to the release namespace.
*/}}
{{- define "crosskey.watchNamespaces" -}}
{{- $list := list }}
{{- range splitList "," .Values.watchNamespace }}
{{- if trim . }}{{ $list = append $list (trim .) }}{{ end }}
{{- end }}
{{- if and (eq .Values.installScope "namespace") (not $list) }}
{{- $list = list .Release.Namespace }}
{{- end }}
{{- $list | uniq | join "," }}
{{- end }}

{{/* Rules on the namespaced crosskey kinds (SharedKey, CrossAccountVault, CrossAccountBackupPlan). */}}
{{- define "crosskey.namespacedRules" -}}
- apiGroups: ["crosskey.dev"]
  resources: ["sharedkeys", "crossaccountvaults", "crossaccountbackupplans"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["crosskey.dev"]
  resources: ["sharedkeys/status", "crossaccountvaults/status", "crossaccountbackupplans/status"]
  verbs: ["patch"]
{{- end }}

{{/* Rules on the cluster-scoped AwsAccount and on the CRDs. */}}
{{- define "crosskey.clusterScopedRules" -}}
- apiGroups: ["crosskey.dev"]
  resources: ["awsaccounts"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["crosskey.dev"]
  resources: ["awsaccounts/status"]
  verbs: ["patch"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}

{{/* Events: the operator records Kubernetes Events on the objects it reconciles. */}}
{{- define "crosskey.eventRules" -}}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
The pod's affinity: deployment.affinity, plus, with more than one replica, an
anti-affinity that keeps the replicas on different nodes (deployment.podAntiAffinity),
unless deployment.affinity has its own podAntiAffinity.
*/}}
{{- define "crosskey.affinity" -}}
{{- $affinity := deepCopy (default (dict) .Values.deployment.affinity) }}
{{- $mode := .Values.deployment.podAntiAffinity }}
{{- if and (gt (int (include "crosskey.replicas" .)) 1) (ne $mode "none") (not (hasKey $affinity "podAntiAffinity")) }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "crosskey.selectorLabels" . | fromYaml)) }}
{{- if eq $mode "required" }}
{{- $_ := set $affinity "podAntiAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (list $term)) }}
{{- else }}
{{- $_ := set $affinity "podAntiAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term))) }}
{{- end }}
{{- end }}
{{- if $affinity }}
{{- toYaml $affinity }}
{{- end }}
{{- end }}

{{/*
Pods of the release: deployment.replicas, or with sharding.shards > 1 a StatefulSet of
shards × replicasPerShard pods, where pod ordinal o serves shard o mod shards.
*/}}
{{- define "crosskey.sharded" -}}
{{- if gt (int .Values.sharding.shards) 1 }}true{{ end -}}
{{- end -}}

{{- define "crosskey.replicas" -}}
{{- if include "crosskey.sharded" . -}}
{{- mul (int .Values.sharding.shards) (int .Values.sharding.replicasPerShard) -}}
{{- else -}}
{{- int .Values.deployment.replicas -}}
{{- end -}}
{{- end -}}
