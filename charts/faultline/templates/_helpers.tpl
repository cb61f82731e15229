{{/* Names are fixed by the release: one faultline per cluster, since its
CRDs and ClusterRoles are cluster-wide. */}}
{{- define "faultline.labels" -}}
app.kubernetes.io/name: faultline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "faultline.selector" -}}
app.kubernetes.io/name: faultline
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "faultline.image" -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{ printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) .component $tag }}
{{- end }}

{{- define "faultline.controllerSA" -}}faultline-controller{{- end }}
{{- define "faultline.agentSA" -}}faultline-agent{{- end }}
