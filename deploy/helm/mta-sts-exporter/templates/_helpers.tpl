{{/*
Names, labels and the small decisions every template shares.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "mta-sts-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified app name: fullnameOverride, else "<release>-<chart name>", else the release
name alone when it already contains the chart name. Truncated to 63 characters (DNS label).
*/}}
{{- define "mta-sts-exporter.fullname" -}}
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

{{/* "name-version" for the helm.sh/chart label. */}}
{{- define "mta-sts-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. helm.sh/chart is kept out of selectors, which are immutable. */}}
{{- define "mta-sts-exporter.labels" -}}
helm.sh/chart: {{ include "mta-sts-exporter.chart" . }}
{{ include "mta-sts-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mta-sts-exporter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select this release's pods. */}}
{{- define "mta-sts-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mta-sts-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "mta-sts-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mta-sts-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The container image: repository, then @digest or :tag (the tag defaults to appVersion). */}}
{{- define "mta-sts-exporter.image" -}}
{{- $repository := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repository = printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* "true" when the release runs as a sharded StatefulSet (sharding.shards >= 2), else "". */}}
{{- define "mta-sts-exporter.sharded" -}}
{{- if ge (int .Values.sharding.shards) 2 }}true{{ end }}
{{- end }}

{{/* Where the chart mounts things inside the container. */}}
{{- define "mta-sts-exporter.configDir" -}}/etc/mta-sts-exporter/config{{- end }}
{{- define "mta-sts-exporter.configFile" -}}{{ include "mta-sts-exporter.configDir" . }}/config.yml{{- end }}
{{- define "mta-sts-exporter.domainsDir" -}}/etc/mta-sts-exporter/domains{{- end }}
{{- define "mta-sts-exporter.domainListsDir" -}}/etc/mta-sts-exporter/domain-lists{{- end }}

{{/*
domainsConfigMaps, checked: every entry has a name and keys, no name twice (each is mounted
at domainListsDir/<name>).
*/}}
{{- define "mta-sts-exporter.domainLists" -}}
{{- $seen := dict }}
{{- range $i, $list := .Values.domainsConfigMaps }}
{{- if not $list.name }}
{{- fail (printf "domainsConfigMaps[%d].name is empty: name an existing ConfigMap holding domain files" $i) }}
{{- end }}
{{- if hasKey $seen $list.name }}
{{- fail (printf "domainsConfigMaps[%d].name %q is listed twice: list each ConfigMap once, with all its keys" $i $list.name) }}
{{- end }}
{{- $_ := set $seen $list.name true }}
{{- end }}
{{- end }}
{{- define "mta-sts-exporter.webConfigDir" -}}/etc/mta-sts-exporter/web{{- end }}
{{- define "mta-sts-exporter.webTlsDir" -}}/etc/mta-sts-exporter/web-tls{{- end }}

{{/* The Secret holding the exporter-toolkit web config. */}}
{{- define "mta-sts-exporter.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "mta-sts-exporter.fullname" .)) .Values.webConfig.existingSecret }}
{{- end }}

{{/* The PVC of a single-replica release with persistence. */}}
{{- define "mta-sts-exporter.stateClaimName" -}}
{{- default (printf "%s-state" (include "mta-sts-exporter.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/*
The exporter's configuration file (docs/configuration.md), built from values:
config.global / config.labels / config.metrics / config.domains / config.domain_sources are
passed through as written (a domain source's cache_file must be under persistence.mountPath); domain_files is
config.domain_files plus one file per key of domainsConfigMap, mounted at domainsDir, and one
per key of each domainsConfigMaps entry, mounted at domainListsDir/<name>.
Refuses a state_file outside persistence.mountPath: the root filesystem is read-only, so the
state file must sit on the state volume.
*/}}
{{- define "mta-sts-exporter.config" -}}
{{- $global := .Values.config.global | default dict }}
{{- with $global.state_file }}
{{- $mount := trimSuffix "/" $.Values.persistence.mountPath }}
{{- if not (hasPrefix (printf "%s/" $mount) .) }}
{{- fail (printf "config.global.state_file %q must be a file under persistence.mountPath %q: the root filesystem is read-only and only the state volume is writable" . $mount) }}
{{- end }}
{{- end }}
{{- $files := list }}
{{- range .Values.config.domain_files }}
{{- $files = append $files . }}
{{- end }}
{{- if .Values.domainsConfigMap.name }}
{{- range .Values.domainsConfigMap.keys }}
{{- $files = append $files (printf "%s/%s" (include "mta-sts-exporter.domainsDir" $) .) }}
{{- end }}
{{- end }}
{{- include "mta-sts-exporter.domainLists" . }}
{{- range .Values.domainsConfigMaps }}
{{- $list := . }}
{{- range .keys }}
{{- $files = append $files (printf "%s/%s/%s" (include "mta-sts-exporter.domainListsDir" $) $list.name .) }}
{{- end }}
{{- end }}
{{- /* One section at a time, so the file reads in the documented order. */}}
{{- $sections := list }}
{{- with $global }}
{{- $sections = append $sections (dict "global" .) }}
{{- end }}
{{- with .Values.config.labels }}
{{- $sections = append $sections (dict "labels" .) }}
{{- end }}
{{- with .Values.config.metrics }}
{{- $sections = append $sections (dict "metrics" .) }}
{{- end }}
{{- with .Values.config.domains }}
{{- $sections = append $sections (dict "domains" .) }}
{{- end }}
{{- with $files }}
{{- $sections = append $sections (dict "domain_files" .) }}
{{- end }}
{{- range $i, $source := .Values.config.domain_sources }}
{{- $mount := trimSuffix "/" $.Values.persistence.mountPath }}
{{- if not (hasPrefix (printf "%s/" $mount) ($source.cache_file | default "")) }}
{{- fail (printf "config.domain_sources[%d].cache_file %q must be a file under persistence.mountPath %q: the exporter writes the last good copy there" $i ($source.cache_file | default "") $mount) }}
{{- end }}
{{- end }}
{{- with .Values.config.domain_sources }}
{{- $sections = append $sections (dict "domain_sources" .) }}
{{- end }}
{{- range $sections }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The URL scheme the exporter serves: https when webConfig.tls is set. */}}
{{- define "mta-sts-exporter.scheme" -}}
{{- if and .Values.webConfig.enabled .Values.webConfig.tls }}https{{ else }}http{{ end }}
{{- end }}

{{/*
The pod template shared by the Deployment and the StatefulSet. The caller passes the root
context; the state volume comes from the workload (emptyDir / PVC / volumeClaimTemplates).
*/}}
{{- define "mta-sts-exporter.podTemplate" -}}
{{- $sharded := include "mta-sts-exporter.sharded" . -}}
metadata:
  labels:
    {{- include "mta-sts-exporter.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if and .Values.webConfig.enabled (not .Values.webConfig.existingSecret) }}
    checksum/web-config: {{ include (print $.Template.BasePath "/web-config-secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "mta-sts-exporter.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.dnsPolicy }}
  dnsPolicy: {{ . }}
  {{- end }}
  {{- with .Values.dnsConfig }}
  dnsConfig:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: mta-sts-exporter
      image: {{ include "mta-sts-exporter.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --config.file={{ include "mta-sts-exporter.configFile" . }}
        - --web.listen-address=:{{ .Values.containerPort }}
        - --log.level={{ .Values.log.level }}
        - --log.format={{ .Values.log.format }}
        - --log.checks={{ .Values.log.checks }}
        {{- if $sharded }}
        # Kubernetes expands $(SHARD_INDEX) from the env below: no shell needed.
        - --shard.index=$(SHARD_INDEX)
        - --shard.count={{ int .Values.sharding.shards }}
        {{- end }}
        {{- if .Values.webConfig.enabled }}
        - --web.config.file={{ include "mta-sts-exporter.webConfigDir" . }}/{{ .Values.webConfig.key }}
        # Health endpoints without auth, for the kubelet, on the next port.
        - --web.probe-address=:{{ add (int .Values.containerPort) 1 }}
        {{- end }}
        {{- if .Values.tlsrpt.enabled }}
        {{- if $sharded }}
        {{- fail "tlsrpt.enabled with sharding.shards > 1: each replica counts only its own domains' reports, so posts spread over the shards would be refused; receive reports on one unsharded release" }}
        {{- end }}
        # TLS-RPT reports posted by senders (no auth: they post anonymously).
        - --tlsrpt.listen-address=:{{ .Values.tlsrpt.port }}
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      {{- if or $sharded .Values.extraEnv }}
      env:
        {{- if $sharded }}
        # The StatefulSet controller labels each pod with its ordinal (Kubernetes >= 1.28).
        - name: SHARD_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        - name: http-metrics
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
        {{- if .Values.webConfig.enabled }}
        - name: http-probe
          containerPort: {{ add (int .Values.containerPort) 1 }}
          protocol: TCP
        {{- end }}
        {{- if .Values.tlsrpt.enabled }}
        - name: tlsrpt
          containerPort: {{ .Values.tlsrpt.port }}
          protocol: TCP
        {{- end }}
      {{- if .Values.livenessProbe.enabled }}
      livenessProbe:
        httpGet:
          path: /-/healthy
          {{- if .Values.webConfig.enabled }}
          port: http-probe
          scheme: HTTP
          {{- else }}
          port: http-metrics
          scheme: {{ include "mta-sts-exporter.scheme" . | upper }}
          {{- end }}
          {{- with .Values.livenessProbe.httpHeaders }}
          httpHeaders:
            {{- toYaml . | nindent 12 }}
          {{- end }}
        initialDelaySeconds: {{ .Values.livenessProbe.initialDelaySeconds }}
        periodSeconds: {{ .Values.livenessProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.livenessProbe.timeoutSeconds }}
        failureThreshold: {{ .Values.livenessProbe.failureThreshold }}
      {{- end }}
      {{- if .Values.readinessProbe.enabled }}
      readinessProbe:
        httpGet:
          path: /-/ready
          {{- if .Values.webConfig.enabled }}
          port: http-probe
          scheme: HTTP
          {{- else }}
          port: http-metrics
          scheme: {{ include "mta-sts-exporter.scheme" . | upper }}
          {{- end }}
          {{- with .Values.readinessProbe.httpHeaders }}
          httpHeaders:
            {{- toYaml . | nindent 12 }}
          {{- end }}
        initialDelaySeconds: {{ .Values.readinessProbe.initialDelaySeconds }}
        periodSeconds: {{ .Values.readinessProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.readinessProbe.timeoutSeconds }}
        failureThreshold: {{ .Values.readinessProbe.failureThreshold }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: {{ include "mta-sts-exporter.configDir" . }}
          readOnly: true
        {{- if .Values.domainsConfigMap.name }}
        - name: domains
          mountPath: {{ include "mta-sts-exporter.domainsDir" . }}
          readOnly: true
        {{- end }}
        {{- range $i, $list := .Values.domainsConfigMaps }}
        - name: domain-list-{{ $i }}
          mountPath: {{ include "mta-sts-exporter.domainListsDir" $ }}/{{ $list.name }}
          readOnly: true
        {{- end }}
        {{- if .Values.webConfig.enabled }}
        - name: web-config
          mountPath: {{ include "mta-sts-exporter.webConfigDir" . }}
          readOnly: true
        {{- if .Values.webConfig.tlsSecretName }}
        - name: web-tls
          mountPath: {{ include "mta-sts-exporter.webTlsDir" . }}
          readOnly: true
        {{- end }}
        {{- end }}
        - name: state
          mountPath: {{ .Values.persistence.mountPath }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "mta-sts-exporter.fullname" . }}
    {{- if .Values.domainsConfigMap.name }}
    - name: domains
      configMap:
        name: {{ .Values.domainsConfigMap.name }}
    {{- end }}
    {{- range $i, $list := .Values.domainsConfigMaps }}
    - name: domain-list-{{ $i }}
      configMap:
        name: {{ $list.name }}
        items:
          {{- range $list.keys }}
          - key: {{ . }}
            path: {{ . }}
          {{- end }}
    {{- end }}
    {{- if .Values.webConfig.enabled }}
    - name: web-config
      secret:
        secretName: {{ include "mta-sts-exporter.webConfigSecretName" . }}
    {{- if .Values.webConfig.tlsSecretName }}
    - name: web-tls
      secret:
        secretName: {{ .Values.webConfig.tlsSecretName }}
    {{- end }}
    {{- end }}
    {{- if not .Values.persistence.enabled }}
    - name: state
      emptyDir: {}
    {{- else if not $sharded }}
    - name: state
      persistentVolumeClaim:
        claimName: {{ include "mta-sts-exporter.stateClaimName" . }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
