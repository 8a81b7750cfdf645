{{/* Names, labels and the values every template derives from. */}}

{{- define "zkfleet.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "zkfleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "zkfleet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "zkfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "zkfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zkfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "zkfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "zkfleet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository@sha256:... when the tag is a digest. Call with
     (dict "image" .Values.image "root" $). */}}
{{- define "zkfleet.imageRef" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- printf "%s%s%s" .image.repository (ternary "@" ":" (hasPrefix "sha256:" $tag)) $tag -}}
{{- end -}}

{{- define "zkfleet.image" -}}
{{- include "zkfleet.imageRef" (dict "image" .Values.image "root" .) -}}
{{- end -}}

{{/* Rounds a pool consumes. Call with (dict "root" $ "pool" "cpu"); returns a comma list.
     An unset CPU pool takes its topology rounds minus those of an enabled GPU pool, so that
     every task queue belongs to exactly one pool. */}}
{{- define "zkfleet.poolRounds" -}}
{{- $root := .root -}}
{{- $pool := index $root.Values.pools .pool -}}
{{- $gpu := $root.Values.pools.gpu -}}
{{- $gpuRounds := default (index $root.Values.topology.pools "gpu") $gpu.rounds -}}
{{- $rounds := list -}}
{{- if $pool.rounds -}}
{{- $rounds = $pool.rounds -}}
{{- else if eq .pool "cpu" -}}
{{- range (index $root.Values.topology.pools "cpu") -}}
{{- if not (and $gpu.enabled (has . $gpuRounds)) -}}
{{- $rounds = append $rounds . -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $rounds = index $root.Values.topology.pools .pool -}}
{{- end -}}
{{- if not $rounds -}}
{{- fail (printf "pool %s has no rounds to consume" .pool) -}}
{{- end -}}
{{- join "," $rounds -}}
{{- end -}}

{{/* Anchored regex over the task queues of a pool, for KEDA's useRegex. */}}
{{- define "zkfleet.poolQueueRegex" -}}
{{- $prefix := regexQuoteMeta .root.Values.topology.taskQueuePrefix -}}
{{- printf "^%s(%s)$" $prefix (include "zkfleet.poolRounds" . | replace "," "|") -}}
{{- end -}}

{{/* Host of the broker as every component reaches it, KEDA included. KEDA's operator resolves
     the trigger's host from its own namespace, where a bare service name means nothing: the
     chart's broker, and a bare broker.host, are qualified as <service>.<namespace>.svc. */}}
{{- define "zkfleet.brokerHost" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- printf "%s-rabbitmq.%s.svc" (include "zkfleet.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- $host := required "broker.host is required when rabbitmq.enabled is false" .Values.broker.host -}}
{{- if contains "." $host -}}
{{- $host -}}
{{- else -}}
{{- printf "%s.%s.svc" $host .Release.Namespace -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "zkfleet.leaderName" -}}
{{- printf "%s-leader" (include "zkfleet.fullname" .) -}}
{{- end -}}

{{/* Secret that holds the leader's API token, and its key. */}}
{{- define "zkfleet.apiTokenSecret" -}}
{{- default (printf "%s-api-token" (include "zkfleet.leaderName" .)) .Values.leader.apiToken.existingSecret -}}
{{- end -}}

{{/* Secret with the broker's `username` and `password`. */}}
{{- define "zkfleet.brokerSecret" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- printf "%s-rabbitmq-default-user" (include "zkfleet.fullname" .) -}}
{{- else if .Values.broker.existingSecret -}}
{{- .Values.broker.existingSecret -}}
{{- else -}}
{{- printf "%s-broker" (include "zkfleet.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "zkfleet.storeSecret" -}}
{{- default (printf "%s-store" (include "zkfleet.fullname" .)) .Values.store.existingSecret -}}
{{- end -}}

{{- define "zkfleet.vhostPath" -}}
{{- if .Values.broker.vhost -}}{{ urlquery .Values.broker.vhost }}{{- end -}}
{{- end -}}

{{/* Environment that gives a container ZKFLEET_AMQP_URI, ZKFLEET_STORE and the store
     credentials. The URI is assembled by the kubelet from the secret, so the password never
     appears in the pod spec. */}}
{{- define "zkfleet.connectionEnv" -}}
- name: BROKER_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ include "zkfleet.brokerSecret" . }}, key: username}
- name: BROKER_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "zkfleet.brokerSecret" . }}, key: password}
- name: ZKFLEET_AMQP_URI
  value: {{ printf "amqp://$(BROKER_USERNAME):$(BROKER_PASSWORD)@%s:%v/%s" (include "zkfleet.brokerHost" .) .Values.broker.amqpPort (include "zkfleet.vhostPath" .) | quote }}
- name: ZKFLEET_STORE
  value: {{ required "store.url is required (terraform output -raw store_url)" .Values.store.url | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ include "zkfleet.storeSecret" . }}, key: AWS_ACCESS_KEY_ID}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "zkfleet.storeSecret" . }}, key: AWS_SECRET_ACCESS_KEY}
{{- end -}}
