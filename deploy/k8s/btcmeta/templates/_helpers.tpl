{{/* Names ---------------------------------------------------------------------------------- */}}
{{- define "btcmeta.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "btcmeta.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>", a valid DNS label (registry names use "_", Kubernetes names "-"). */}}
{{- define "btcmeta.componentName" -}}
{{- printf "%s-%s" (include "btcmeta.fullname" .root) (.suffix | replace "_" "-") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "btcmeta.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "btcmeta.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "executor") ------------------------------------ */}}
{{- define "btcmeta.selectorLabels" -}}
app.kubernetes.io/name: {{ include "btcmeta.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "btcmeta.labels" -}}
{{ include "btcmeta.selectorLabels" . }}
app.kubernetes.io/part-of: btcmeta
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Images --------------------------------------------------------------------------------- */}}
{{- define "btcmeta.image" -}}
{{- $img := index .root.Values.image .kind -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) $img.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Strategy registry ------------------------------------------------------------------------
The JSON text of the registry: the `registry` value when given (helm --set-file registry=FILE,
Argo CD fileParameters), else strategies_registry.json beside Chart.yaml (a symlink to the
repository's file). Rendering fails when neither yields a registry with a "strategies" list. */}}
{{- define "btcmeta.registryJson" -}}
{{- $raw := .Values.registry | default (.Files.Get "strategies_registry.json") -}}
{{- if not (trim $raw) -}}
{{- fail "no strategy registry: strategies_registry.json is missing from the chart folder and the registry value is empty (use --set-file registry=strategies_registry.json)" -}}
{{- end -}}
{{- $reg := fromJson $raw -}}
{{- if or (hasKey $reg "Error") (not (hasKey $reg "strategies")) -}}
{{- fail (printf "the strategy registry is not valid JSON with a \"strategies\" list: %v" (get $reg "Error")) -}}
{{- end -}}
{{- $raw -}}
{{- end -}}

{{/* The enabled entries as a JSON list (templates call fromJsonArray on it). Names are checked
here too, because they become Kubernetes names. */}}
{{- define "btcmeta.enabledStrategies" -}}
{{- $reg := include "btcmeta.registryJson" . | fromJson -}}
{{- $enabled := list -}}
{{- $seen := dict -}}
{{- range $reg.strategies -}}
{{- if not (regexMatch "^[a-z][a-z0-9_]*$" (toString .name)) -}}
{{- fail (printf "registry: strategy name %q must match ^[a-z][a-z0-9_]*$" (toString .name)) -}}
{{- end -}}
{{- if hasKey $seen .name -}}
{{- fail (printf "registry: strategy name %q appears twice" .name) -}}
{{- end -}}
{{- $_ := set $seen .name true -}}
{{- if eq (toString .enabled) "true" -}}
{{- $enabled = append $enabled . -}}
{{- end -}}
{{- end -}}
{{- toJson $enabled -}}
{{- end -}}

{{/* Settings shared by every pod (ConfigMap data). Never secrets. */}}
{{- define "btcmeta.configData" -}}
BTCMETA_KAFKA__BOOTSTRAP_SERVERS: {{ required "kafka.bootstrapServers is required (MSK IAM brokers, port 9098)" .Values.kafka.bootstrapServers | quote }}
BTCMETA_KAFKA__SECURITY: {{ .Values.kafka.security | quote }}
BTCMETA_KAFKA__AWS_REGION: {{ .Values.kafka.awsRegion | quote }}
BTCMETA_KAFKA__TOPIC_PREFIX: {{ .Values.kafka.topicPrefix | quote }}
BTCMETA_KAFKA__CLIENT_ID: {{ .Values.kafka.clientId | quote }}
BTCMETA_RISK__MAX_POSITION_BTC: {{ .Values.risk.maxPositionBtc | toString | quote }}
BTCMETA_RISK__MAX_ORDER_BTC: {{ .Values.risk.maxOrderBtc | toString | quote }}
BTCMETA_RISK__DAILY_LOSS_CAP_USD: {{ .Values.risk.dailyLossCapUsd | toString | quote }}
BTCMETA_RISK__MAX_ORDERS_PER_HOUR: {{ .Values.risk.maxOrdersPerHour | toString | quote }}
BTCMETA_RISK__MAX_INTENT_AGE_S: {{ .Values.risk.maxIntentAgeS | toString | quote }}
BTCMETA_GLOBAL_TICK: {{ .Values.schedule.globalTick | quote }}
BTCMETA_MIN_TIMEFRAME: {{ .Values.schedule.minTimeframe | quote }}
BTCMETA_MAX_LOOKBACK_HOURS: {{ .Values.schedule.maxLookbackHours | toString | quote }}
BTCMETA_SYMBOL: {{ .Values.schedule.symbol | quote }}
{{- with .Values.exogenous }}
BTCMETA_EXOGENOUS__FEAR_GREED_URL: {{ .fearGreedUrl | quote }}
BTCMETA_EXOGENOUS__FEAR_GREED_LIMIT: {{ .fearGreedLimit | toString | quote }}
BTCMETA_EXOGENOUS__NEWS_RSS_URL: {{ .newsRssUrl | quote }}
BTCMETA_EXOGENOUS__SENTIMENT_URL: {{ .sentimentUrl | quote }}
BTCMETA_EXOGENOUS__KRAKEN_FUTURES_URL: {{ .krakenFuturesUrl | quote }}
BTCMETA_EXOGENOUS__KRAKEN_SYMBOL: {{ .krakenSymbol | quote }}
BTCMETA_EXOGENOUS__KRAKEN_FUNDING_DAYS: {{ .krakenFundingDays | toString | quote }}
BTCMETA_EXOGENOUS__BINANCE_FUTURES_URL: {{ .binanceFuturesUrl | quote }}
BTCMETA_EXOGENOUS__BINANCE_SYMBOL: {{ .binanceSymbol | quote }}
BTCMETA_EXOGENOUS__BINANCE_FUNDING_DAYS: {{ .binanceFundingDays | toString | quote }}
BTCMETA_EXOGENOUS__TIMEOUT_S: {{ .timeoutS | toString | quote }}
BTCMETA_EXOGENOUS__ATTEMPTS: {{ .attempts | toString | quote }}
{{- end }}
BTCMETA_METRICS_PORT: {{ .Values.metricsPort | toString | quote }}
BTCMETA_LOG_LEVEL: {{ .Values.logLevel | quote }}
BTCMETA_LOG_JSON: "true"
BTCMETA_REGISTRY_PATH: "/etc/btcmeta/registry/strategies_registry.json"
# The root filesystem is read-only: anything that writes under $HOME goes to the /tmp emptyDir.
HOME: "/tmp"
MPLCONFIGDIR: "/tmp/matplotlib"
{{- range $k, $v := .Values.extraEnv }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{- define "btcmeta.hookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation
{{- end -}}

{{/* One Deployment. Call with a dict:
  root, component, name, kind (services|meta), module, args, replicas, singleton (bool: Recreate),
  resources, secrets (list of Secret names for envFrom), annotations (dict), labels (dict),
  http (dict port/path: the service's own HTTP server, exposed as port \"http\"), extraEnv (dict).
Every long-running service serves Prometheus /metrics on metricsPort (BTCMETA_METRICS_PORT). */}}
{{- define "btcmeta.deployment" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $ctx := dict "root" $root "component" .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  labels:
    {{- include "btcmeta.labels" $ctx | nindent 4 }}
    {{- with .labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  replicas: {{ .replicas }}
  revisionHistoryLimit: 5
  {{- if .singleton }}
  # Never two at once: the old pod is gone before the new one starts.
  strategy:
    type: Recreate
  {{- else }}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  {{- end }}
  selector:
    matchLabels:
      {{- include "btcmeta.selectorLabels" $ctx | nindent 6 }}
      {{- with .labels }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
  template:
    metadata:
      labels:
        {{- include "btcmeta.labels" $ctx | nindent 8 }}
        {{- with .labels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "btcmeta.configData" $root | sha256sum }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $v.metricsPort | quote }}
        prometheus.io/path: /metrics
        {{- with .annotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "btcmeta.serviceAccountName" $root }}
      # IRSA injects its own projected token; the Kubernetes API token is not needed.
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 60
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- range . }}
        - name: {{ . }}
        {{- end }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "btcmeta.image" (dict "root" $root "kind" .kind) }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          command: ["python", "-m", {{ .module | quote }}]
          args:
            {{- toYaml .args | nindent 12 }}
          envFrom:
            - configMapRef:
                name: {{ include "btcmeta.fullname" $root }}-config
            {{- range .secrets }}
            - secretRef:
                name: {{ . }}
            {{- end }}
          {{- with .extraEnv }}
          env:
            {{- range $k, $val := . }}
            - name: {{ $k }}
              value: {{ $val | toString | quote }}
            {{- end }}
          {{- end }}
          ports:
            - name: metrics
              containerPort: {{ $v.metricsPort }}
              protocol: TCP
            {{- if .http }}
            - name: http
              containerPort: {{ .http.port }}
              protocol: TCP
            {{- end }}
          {{- /* common/health.py, served on the metrics port by every service (the bridge too):
               live = the main loop turned recently; ready = live and Postgres/Kafka answered
               recently. /metrics alone stayed green while a service was wedged. */ -}}
          {{- $live := dict "httpGet" (dict "path" "/healthz/live" "port" "metrics") -}}
          {{- $ready := dict "httpGet" (dict "path" "/healthz/ready" "port" "metrics") }}
          startupProbe:
            {{- toYaml (merge (dict) $live $v.probes.startup) | nindent 12 }}
          readinessProbe:
            {{- toYaml (merge (dict) $ready $v.probes.readiness) | nindent 12 }}
          livenessProbe:
            {{- toYaml (merge (dict) $live $v.probes.liveness) | nindent 12 }}
          resources:
            {{- toYaml .resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            - name: registry
              mountPath: /etc/btcmeta/registry
              readOnly: true
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: registry
          configMap:
            name: {{ include "btcmeta.fullname" $root }}-registry
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{/* A PodDisruptionBudget: (dict "root" $ "component" c "name" n "labels" l "maxUnavailable" x | "minAvailable" y) */}}
{{- define "btcmeta.pdb" -}}
{{- $ctx := dict "root" .root "component" .component -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels:
    {{- include "btcmeta.labels" $ctx | nindent 4 }}
spec:
  {{- if hasKey . "minAvailable" }}
  minAvailable: {{ .minAvailable }}
  {{- else }}
  maxUnavailable: {{ .maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "btcmeta.selectorLabels" $ctx | nindent 6 }}
      {{- with .labels }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
{{- end -}}
