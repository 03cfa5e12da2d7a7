{{/* ------------------------------------------------------------------ names */}}

{{- define "tracehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tracehouse.fullname" -}}
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

{{/* <fullname>-<role>; args: dict root role */}}
{{- define "tracehouse.roleName" -}}
{{- printf "%s-%s" (include "tracehouse.fullname" .root | trunc 50 | trimSuffix "-") .role }}
{{- end }}

{{- define "tracehouse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* ----------------------------------------------------------------- labels */}}

{{/* args: dict root role */}}
{{- define "tracehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tracehouse.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{/* args: dict root role */}}
{{- define "tracehouse.labels" -}}
helm.sh/chart: {{ include "tracehouse.chart" .root }}
{{ include "tracehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: tracehouse
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------ image */}}

{{- define "tracehouse.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "tracehouse.sidecarImage" -}}
{{- $i := .Values.sidecar.image }}
{{- if $i.digest }}
{{- printf "%s@%s" $i.repository $i.digest }}
{{- else }}
{{- printf "%s:%s" $i.repository (default .Chart.AppVersion $i.tag) }}
{{- end }}
{{- end }}

{{/* args: dict root role */}}
{{- define "tracehouse.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create }}
{{- include "tracehouse.roleName" . }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- checks */}}

{{/* Settings the schema cannot compare with one another. */}}
{{- define "tracehouse.validate" -}}
{{- $v := .Values }}
{{- $partitions := int $v.kafka.partitions }}
{{- if $v.writer.enabled }}
{{- if $v.writer.autoscaling.enabled }}
{{- if gt (int $v.writer.autoscaling.maxReplicas) $partitions }}
{{- fail (printf "writer.autoscaling.maxReplicas (%d) exceeds kafka.partitions (%d): Kafka gives each partition to one writer, the others would sit idle" (int $v.writer.autoscaling.maxReplicas) $partitions) }}
{{- end }}
{{- if gt (int $v.writer.autoscaling.minReplicas) (int $v.writer.autoscaling.maxReplicas) }}
{{- fail "writer.autoscaling.minReplicas exceeds writer.autoscaling.maxReplicas" }}
{{- end }}
{{- else if gt (int $v.writer.replicas) $partitions }}
{{- fail (printf "writer.replicas (%d) exceeds kafka.partitions (%d): Kafka gives each partition to one writer, the others would sit idle" (int $v.writer.replicas) $partitions) }}
{{- end }}
{{- end }}
{{- if and $v.kafka.sasl.enabled (not $v.kafka.sasl.existingSecret) }}
{{- fail "kafka.sasl.enabled needs kafka.sasl.existingSecret (a Secret with the SASL username and password)" }}
{{- end }}
{{- if and (not $v.kafka.tls.enabled) (or $v.kafka.tls.caSecret.name $v.kafka.tls.clientCertSecret $v.kafka.tls.insecureSkipVerify) }}
{{- fail "kafka.tls settings are given but kafka.tls.enabled is false" }}
{{- end }}
{{- if and (or $v.clickhouse.tls.caSecret.name $v.clickhouse.tls.clientCertSecret) (not (hasPrefix "https://" $v.clickhouse.endpoint)) }}
{{- fail "clickhouse.tls.caSecret or clientCertSecret is set but clickhouse.endpoint is not https://" }}
{{- end }}
{{- range $role := list "query" "sidecar" }}
{{- $t := (index $v $role).tls }}
{{- if and $t.enabled (not $t.secretName) }}
{{- fail (printf "%s.tls.enabled needs %s.tls.secretName (a kubernetes.io/tls Secret with tls.crt and tls.key)" $role $role) }}
{{- end }}
{{- if and (not $t.enabled) (or $t.secretName $t.clientCA.secretName) }}
{{- fail (printf "%s.tls settings are given but %s.tls.enabled is false" $role $role) }}
{{- end }}
{{- end }}
{{- if and $v.sidecar.example.enabled $v.sidecar.tls.enabled $v.sidecar.tls.clientCA.secretName (not $v.sidecar.example.clientCertSecret) }}
{{- fail "sidecar.tls.clientCA requires client certificates: set sidecar.example.clientCertSecret for the example app" }}
{{- end }}
{{- if $v.injector.enabled }}
{{- if not $v.injector.tls.secretName }}
{{- fail "injector.enabled needs injector.tls.secretName (a kubernetes.io/tls Secret for the webhook's Service name; README: Sidecar injection)" }}
{{- end }}
{{- if eq (not $v.injector.tls.certManagerCertificate) (not $v.injector.tls.caBundle) }}
{{- fail "injector.enabled needs exactly one of injector.tls.certManagerCertificate (cert-manager injects the CA) and injector.tls.caBundle" }}
{{- end }}
{{- if $v.sidecar.tls.enabled }}
{{- fail "injector.enabled with sidecar.tls.enabled is not supported: injected apps would need the sidecar's CA and their own certificates" }}
{{- end }}
{{- if not $v.sidecar.configMap }}
{{- fail "injector.enabled needs sidecar.configMap: injected pods mount the sidecar ConfigMap" }}
{{- end }}
{{- end }}
{{- if and $v.ingress.enabled (not $v.query.enabled) }}
{{- fail "ingress.enabled needs query.enabled: the Ingress routes to the query API" }}
{{- end }}
{{- end }}

{{/* Whether the query API requires client certificates (its probes then go to a plain health_check port). */}}
{{- define "tracehouse.queryMtls" -}}
{{- if and .Values.query.tls.enabled .Values.query.tls.clientCA.secretName }}true{{- end }}
{{- end }}

{{/* The `tls` key of a listener from a role's `tls` values, as YAML. args: the role's tls values */}}
{{- define "tracehouse.serverTls" -}}
{{- $tls := dict "cert_file" "/etc/tracehouse/tls/server/tls.crt" "key_file" "/etc/tracehouse/tls/server/tls.key" }}
{{- if .clientCA.secretName }}
{{- $_ := set $tls "client_ca_file" "/etc/tracehouse/tls/client-ca/ca.crt" }}
{{- $_ := set $tls "client_ca_file_reload" true }}
{{- end }}
{{- if and (hasKey . "minVersion") (ne (toString .minVersion) "1.2") }}
{{- $_ := set $tls "min_version" (toString .minVersion) }}
{{- end }}
{{- if .reloadInterval }}
{{- $_ := set $tls "reload_interval" .reloadInterval }}
{{- end }}
{{- toYaml $tls }}
{{- end }}

{{/* The `tls` key of the ClickHouse client, as YAML ("" when none). */}}
{{- define "tracehouse.clickhouseTls" -}}
{{- $t := .Values.clickhouse.tls }}
{{- $tls := dict }}
{{- if $t.caSecret.name }}
{{- $_ := set $tls "ca_file" "/etc/tracehouse/tls/clickhouse-ca/ca.crt" }}
{{- end }}
{{- if $t.clientCertSecret }}
{{- $_ := set $tls "cert_file" "/etc/tracehouse/tls/clickhouse-client/tls.crt" }}
{{- $_ := set $tls "key_file" "/etc/tracehouse/tls/clickhouse-client/tls.key" }}
{{- end }}
{{- if $tls }}
{{- toYaml $tls }}
{{- end }}
{{- end }}

{{/* --------------------------------------------------------------- configs */}}

{{/*
Deep merge of the second map into the first (in place). Unlike sprig's mergeOverwrite,
false, 0, "" and null in the second map win too.
*/}}
{{- define "tracehouse.merge" -}}
{{- $dst := index . 0 }}
{{- range $key, $value := index . 1 }}
{{- $current := get $dst $key }}
{{- if and (kindIs "map" $value) (kindIs "map" $current) }}
{{- include "tracehouse.merge" (list $current $value) }}
{{- else }}
{{- $_ := set $dst $key $value }}
{{- end }}
{{- end }}
{{- end }}

{{/* The `tls` and `auth` keys of a kafka receiver or exporter, as YAML ("" when plaintext). */}}
{{- define "tracehouse.kafkaSecurity" -}}
{{- $k := .Values.kafka }}
{{- $out := dict }}
{{- if $k.tls.enabled }}
{{- $tls := dict }}
{{- if $k.tls.caSecret.name }}
{{- $_ := set $tls "ca_file" "/etc/tracehouse/tls/kafka-ca/ca.crt" }}
{{- end }}
{{- if $k.tls.clientCertSecret }}
{{- $_ := set $tls "cert_file" "/etc/tracehouse/tls/kafka-client/tls.crt" }}
{{- $_ := set $tls "key_file" "/etc/tracehouse/tls/kafka-client/tls.key" }}
{{- end }}
{{- if $k.tls.insecureSkipVerify }}
{{- $_ := set $tls "insecure_skip_verify" true }}
{{- end }}
{{- $_ := set $out "tls" $tls }}
{{- end }}
{{- if $k.sasl.enabled }}
{{- $sasl := dict "mechanism" $k.sasl.mechanism "username" "${env:TRACEHOUSE_KAFKA_SASL_USERNAME}" "password" "${env:TRACEHOUSE_KAFKA_SASL_PASSWORD}" }}
{{- $_ := set $out "auth" (dict "sasl" $sasl) }}
{{- end }}
{{- if $out }}
{{- toYaml $out }}
{{- end }}
{{- end }}

{{/* What the values change in a role's config, as YAML ("" when nothing). args: dict root role */}}
{{- define "tracehouse.configOverlay" -}}
{{- $v := .root.Values }}
{{- $overlay := dict }}
{{- $kafka := include "tracehouse.kafkaSecurity" .root | fromYaml }}
{{- $chTls := include "tracehouse.clickhouseTls" .root | fromYaml }}
{{- if eq .role "writer" }}
{{- if $kafka }}
{{- $_ := set $overlay "receivers" (dict "kafka" $kafka) }}
{{- end }}
{{- $ch := dict }}
{{- if $v.clickhouse.cluster }}
{{- $_ := set $ch "cluster" $v.clickhouse.cluster }}
{{- end }}
{{- if ne $v.clickhouse.database "tracehouse" }}
{{- $_ := set $ch "database" $v.clickhouse.database }}
{{- end }}
{{- if $chTls }}
{{- $_ := set $ch "tls" $chTls }}
{{- end }}
{{- if $ch }}
{{- $_ := set $overlay "exporters" (dict "clickhouse" $ch) }}
{{- end }}
{{- else if eq .role "sidecar" }}
{{- if $kafka }}
{{- $_ := set $overlay "exporters" (dict "kafka" $kafka) }}
{{- end }}
{{- if $v.sidecar.tls.enabled }}
{{- $tls := include "tracehouse.serverTls" $v.sidecar.tls | fromYaml }}
{{- $protocols := dict "grpc" (dict "tls" $tls) "http" (dict "tls" (deepCopy $tls)) }}
{{- $_ := set $overlay "receivers" (dict "otlp" (dict "protocols" $protocols)) }}
{{- end }}
{{- else if eq .role "query" }}
{{- $api := dict }}
{{- $ch := dict }}
{{- if ne $v.clickhouse.database "tracehouse" }}
{{- $_ := set $ch "database" $v.clickhouse.database }}
{{- end }}
{{- if $chTls }}
{{- $_ := set $ch "tls" $chTls }}
{{- end }}
{{- if $ch }}
{{- $_ := set $api "clickhouse" $ch }}
{{- end }}
{{- if $v.query.tls.enabled }}
{{- $_ := set $api "tls" (include "tracehouse.serverTls" $v.query.tls | fromYaml) }}
{{- end }}
{{- if $api }}
{{- $_ := set $overlay "extensions" (dict "query_api" $api) }}
{{- end }}
{{- if include "tracehouse.queryMtls" .root }}
{{- /* The kubelet presents no client certificate: probes and scrapes get a plain port. */}}
{{- $_ := set $overlay.extensions "health_check" (dict "endpoint" "${env:TRACEHOUSE_BIND:-localhost}:${env:TRACEHOUSE_HEALTH_PORT:-13133}") }}
{{- $_ := set $overlay "service" (dict "extensions" (list "query_api" "health_check")) }}
{{- end }}
{{- end }}
{{- include "tracehouse.merge" (list $overlay (deepCopy (index $v .role).configOverrides)) }}
{{- if $overlay }}
{{- toYaml $overlay }}
{{- end }}
{{- end }}

{{/*
A role's tracehouse config: files/<role>.yaml (a copy of deploy/config/<role>.yaml) as it
is when the values change nothing in it, else that file with the changes merged in.
args: dict root role
*/}}
{{- define "tracehouse.config" -}}
{{- $text := .root.Files.Get (printf "files/%s.yaml" .role) }}
{{- $overlay := include "tracehouse.configOverlay" . | fromYaml }}
{{- if not $overlay }}
{{- $text }}
{{- else }}
{{- $config := $text | fromYaml }}
{{- include "tracehouse.merge" (list $config $overlay) -}}
# deploy/config/{{ .role }}.yaml with the chart's values merged in (see its comments there).
{{ toYaml $config }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------ containers */}}

{{/* Env of a Kafka client (sidecar, writer). */}}
{{- define "tracehouse.kafkaEnv" -}}
- name: TRACEHOUSE_KAFKA_BROKERS
  value: {{ join "," .Values.kafka.brokers | quote }}
- name: TRACEHOUSE_KAFKA_TOPIC
  value: {{ .Values.kafka.topic | quote }}
- name: TRACEHOUSE_KAFKA_IDEMPOTENCE
  value: {{ .Values.kafka.idempotence | toString | quote }}
{{- if .Values.kafka.sasl.enabled }}
- name: TRACEHOUSE_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.usernameKey }}
- name: TRACEHOUSE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- end }}

{{/* Env of a ClickHouse client (writer, query). args: dict root role */}}
{{- define "tracehouse.clickhouseEnv" -}}
{{- $ch := .root.Values.clickhouse }}
{{- $auth := $ch.auth }}
{{- if and (eq .role "query") $ch.queryAuth.existingSecret }}
{{- $auth = $ch.queryAuth }}
{{- end }}
- name: TRACEHOUSE_CLICKHOUSE_DSN
  value: {{ $ch.endpoint | quote }}
{{- if $auth.existingSecret }}
- name: TRACEHOUSE_CLICKHOUSE_USER
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ $auth.usernameKey }}
- name: TRACEHOUSE_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ $auth.passwordKey }}
{{- else }}
- name: TRACEHOUSE_CLICKHOUSE_USER
  value: {{ $ch.auth.username | quote }}
{{- end }}
{{- end }}

{{/* Volume mounts of a role's container. args: dict root role */}}
{{- define "tracehouse.volumeMounts" -}}
{{- $v := .root.Values }}
- name: config
  mountPath: /etc/tracehouse/config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if and (ne .role "query") $v.kafka.tls.enabled }}
{{- if $v.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/tracehouse/tls/kafka-ca
  readOnly: true
{{- end }}
{{- if $v.kafka.tls.clientCertSecret }}
- name: kafka-client
  mountPath: /etc/tracehouse/tls/kafka-client
  readOnly: true
{{- end }}
{{- end }}
{{- if and (ne .role "sidecar") $v.clickhouse.tls.caSecret.name }}
- name: clickhouse-ca
  mountPath: /etc/tracehouse/tls/clickhouse-ca
  readOnly: true
{{- end }}
{{- if and (ne .role "sidecar") $v.clickhouse.tls.clientCertSecret }}
- name: clickhouse-client
  mountPath: /etc/tracehouse/tls/clickhouse-client
  readOnly: true
{{- end }}
{{- $listener := (index $v .role).tls | default dict }}
{{- if $listener.enabled }}
- name: tls-server
  mountPath: /etc/tracehouse/tls/server
  readOnly: true
{{- if $listener.clientCA.secretName }}
- name: tls-client-ca
  mountPath: /etc/tracehouse/tls/client-ca
  readOnly: true
{{- end }}
{{- end }}
{{- if and (eq .role "sidecar") $v.sidecar.diskQueue.enabled }}
- name: queue
  mountPath: /var/lib/tracehouse/queue
{{- end }}
{{- if eq .role "sidecar" }}
- name: podinfo
  mountPath: /etc/podinfo
  readOnly: true
{{- end }}
{{- end }}

{{/* Volumes of a role's pod. args: dict root role */}}
{{- define "tracehouse.volumes" -}}
{{- $v := .root.Values }}
- name: config
  configMap:
    name: {{ include "tracehouse.roleName" . }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if and (ne .role "query") $v.kafka.tls.enabled }}
{{- if $v.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ $v.kafka.tls.caSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $v.kafka.tls.caSecret.key }}
        path: ca.crt
{{- end }}
{{- if $v.kafka.tls.clientCertSecret }}
- name: kafka-client
  secret:
    secretName: {{ $v.kafka.tls.clientCertSecret }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}
{{- if and (ne .role "sidecar") $v.clickhouse.tls.caSecret.name }}
- name: clickhouse-ca
  secret:
    secretName: {{ $v.clickhouse.tls.caSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $v.clickhouse.tls.caSecret.key }}
        path: ca.crt
{{- end }}
{{- if and (ne .role "sidecar") $v.clickhouse.tls.clientCertSecret }}
- name: clickhouse-client
  secret:
    secretName: {{ $v.clickhouse.tls.clientCertSecret }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- $listener := (index $v .role).tls | default dict }}
{{- if $listener.enabled }}
# The listener's certificate. No subPath: the kubelet updates the files when the Secret
# changes, and tracehouse reloads them (reload_interval) without a restart.
- name: tls-server
  secret:
    secretName: {{ $listener.secretName }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- if $listener.clientCA.secretName }}
- name: tls-client-ca
  secret:
    secretName: {{ $listener.clientCA.secretName }}
    defaultMode: 0440
    items:
      - key: {{ $listener.clientCA.key }}
        path: ca.crt
{{- end }}
{{- end }}
{{- if and (eq .role "sidecar") $v.sidecar.diskQueue.enabled }}
- name: queue
  emptyDir:
    sizeLimit: {{ $v.sidecar.diskQueue.sizeLimit }}
{{- end }}
{{- if eq .role "sidecar" }}
# The pod's labels and annotations for the k8sattributes processor.
- name: podinfo
  downwardAPI:
    items:
      - path: labels
        fieldRef:
          fieldPath: metadata.labels
      - path: annotations
        fieldRef:
          fieldPath: metadata.annotations
{{- end }}
{{- end }}

{{/* The pod's scheduling settings. args: the role's values */}}
{{- define "tracehouse.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The pod's identity for the k8sattributes processor (downward API). */}}
{{- define "tracehouse.downwardEnv" -}}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
- name: K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: K8S_POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: K8S_CONTAINER_NAME
  value: {{ .Values.sidecar.appContainerName | quote }}
{{- end }}

{{/* The sidecar container (native: an init container with restartPolicy: Always). */}}
{{- define "tracehouse.sidecarContainer" -}}
{{- $v := .Values }}
- name: tracehouse
  image: {{ include "tracehouse.sidecarImage" . }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if $v.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args: ["--config", "/etc/tracehouse/config/sidecar.yaml"]
  # OTLP (4317 gRPC, 4318 HTTP) listens on localhost: only the pod's own containers reach it.
  ports:
    - name: health
      containerPort: 13133
  env:
    # The health port: the kubelet probes the pod IP.
    - name: TRACEHOUSE_BIND
      value: "0.0.0.0"
    - name: TRACEHOUSE_OTLP_BIND
      value: localhost
    {{- include "tracehouse.kafkaEnv" . | trim | nindent 4 }}
    {{- include "tracehouse.downwardEnv" . | trim | nindent 4 }}
    - name: TRACEHOUSE_QUEUE_DIR
      value: {{ ternary "/var/lib/tracehouse/queue" "" $v.sidecar.diskQueue.enabled | quote }}
    {{- with $v.sidecar.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  resources:
    {{- toYaml $v.sidecar.resources | nindent 4 }}
  {{- if $v.sidecar.native }}
  # The app container starts once this succeeds.
  startupProbe:
    httpGet:
      path: /readyz
      port: health
    periodSeconds: 1
    failureThreshold: 30
  {{- else }}
  lifecycle:
    preStop:
      # The app receives SIGTERM now and flushes to this sidecar, which stops later.
      sleep:
        seconds: {{ $v.sidecar.preStopSleepSeconds }}
  {{- end }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: health
    periodSeconds: 10
    timeoutSeconds: 2
  livenessProbe:
    httpGet:
      path: /healthz
      port: health
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  securityContext:
    {{- $user := pick $v.podSecurityContext "runAsUser" "runAsGroup" }}
    {{- toYaml (merge $user $v.containerSecurityContext) | nindent 4 }}
  volumeMounts:
    {{- include "tracehouse.volumeMounts" (dict "root" . "role" "sidecar") | trim | nindent 4 }}
{{- end }}
