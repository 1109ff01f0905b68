{{- define "vivace.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vivace.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "vivace.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "vivace.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "vivace.secretName" -}}
{{ include "vivace.fullname" . }}-secrets
{{- end -}}

{{/* The variables every Vivace container gets. */}}
{{- define "vivace.env" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret | default (include "vivace.secretName" .) }}
      key: {{ if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}DATABASE_URL{{ end }}
- name: VIVACE_KAFKA_BROKERS
  value: {{ required "kafka.brokers is required" .Values.kafka.brokers | quote }}
{{- if .Values.kafka.tls.enabled }}
- name: VIVACE_KAFKA_TLS
  value: "true"
{{- if .Values.kafka.tls.caSecret }}
- name: VIVACE_KAFKA_TLS_CA_FILE
  value: /etc/vivace/kafka-ca/ca.crt
{{- end }}
{{- end }}
{{- if .Values.kafka.sasl.mechanism }}
- name: VIVACE_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: VIVACE_KAFKA_SASL_USERNAME
  value: {{ .Values.kafka.sasl.username | quote }}
- name: VIVACE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret | default (include "vivace.secretName" .) }}
      key: {{ if .Values.kafka.sasl.existingSecret }}{{ .Values.kafka.sasl.existingSecretKey }}{{ else }}VIVACE_KAFKA_SASL_PASSWORD{{ end }}
{{- end }}
{{- if .Values.core.url }}
- name: VIVACE_CORE_URL
  value: {{ .Values.core.url | quote }}
- name: VIVACE_CORE_CLIENT_NO
  value: {{ .Values.core.clientNo | quote }}
{{- end }}
{{- if or .Values.core.authKey .Values.core.existingSecret }}
- name: VIVACE_CORE_AUTH_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.core.existingSecret | default (include "vivace.secretName" .) }}
      key: {{ if .Values.core.existingSecret }}{{ .Values.core.existingSecretKey }}{{ else }}VIVACE_CORE_AUTH_KEY{{ end }}
{{- end }}
{{- if .Values.ariaFeed.url }}
- name: VIVACE_ARIA_FEED_URL
  value: {{ .Values.ariaFeed.url | quote }}
- name: VIVACE_ARIA_TOKEN_URL
  value: {{ .Values.ariaFeed.tokenUrl | quote }}
- name: VIVACE_ARIA_CLIENT_ID
  value: {{ .Values.ariaFeed.clientId | quote }}
- name: VIVACE_ARIA_CLIENT
  value: {{ .Values.ariaFeed.client | quote }}
- name: VIVACE_ARIA_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "vivace.secretName" . }}
      key: VIVACE_ARIA_CLIENT_SECRET
{{- end }}
{{- range $k, $v := .Values.secretEnv }}
- name: {{ $k }}
  valueFrom:
    secretKeyRef:
      name: {{ include "vivace.secretName" $ }}
      key: {{ $k }}
{{- end }}
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
- name: VIVACE_LOG_FORMAT
  value: json
{{- end -}}
