{{/* Pod spec of a worker of one pool, shared by its Deployment and the GPU ScaledJob.
     Call with (dict "root" $ "pool" "cpu" "job" false). */}}
{{- define "zkfleet.workerPodSpec" -}}
{{- $root := .root -}}
{{- $pool := index $root.Values.pools .pool -}}
{{- $w := $root.Values.worker -}}
{{- $image := include "zkfleet.image" $root -}}
{{- if eq .pool "gpu" -}}
{{- $image = include "zkfleet.imageRef" (dict "image" $pool.image "root" $root) -}}
{{- end -}}
serviceAccountName: {{ include "zkfleet.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
# Longer than the worker's own grace period: the kubelet never kills a draining worker.
terminationGracePeriodSeconds: {{ add $w.gracePeriodSeconds $w.terminationMarginSeconds }}
{{- if .job }}
restartPolicy: Never
{{- end }}
securityContext:
  {{- toYaml $w.podSecurityContext | nindent 2 }}
{{- with $pool.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $pool.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $pool.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: worker
    image: {{ $image }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    command: ["worker"]
    env:
      {{- include "zkfleet.connectionEnv" $root | nindent 6 }}
      - {name: ZKFLEET_POOL, value: {{ .pool | quote }}}
      - {name: ZKFLEET_ROUNDS, value: {{ include "zkfleet.poolRounds" (dict "root" $root "pool" .pool) | quote }}}
      - {name: ZKFLEET_CONCURRENCY, value: {{ $pool.concurrency | quote }}}
      - {name: ZKFLEET_GRACE_PERIOD, value: {{ $w.gracePeriodSeconds | quote }}}
      - {name: ZKFLEET_METRICS_ADDR, value: {{ printf "0.0.0.0:%v" $w.metricsPort | quote }}}
      - {name: ZKFLEET_LOG_FORMAT, value: {{ $w.logFormat | quote }}}
      - {name: ZKFLEET_PRELOAD, value: {{ $w.preload | quote }}}
      {{- if .job }}
      - {name: ZKFLEET_MAX_TASKS, value: {{ $pool.job.maxTasks | quote }}}
      - {name: ZKFLEET_IDLE_EXIT, value: {{ $pool.job.idleExitSeconds | quote }}}
      {{- end }}
      # Circuit builds and the TLS stack may write temporary files; the root is read-only.
      - {name: TMPDIR, value: /tmp}
      - {name: XDG_CACHE_HOME, value: /tmp/cache}
      {{- with $w.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    ports:
      - {name: metrics, containerPort: {{ $w.metricsPort }}, protocol: TCP}
    # Alive: the process serves HTTP. A proof in progress does not block it (proving runs on
    # its own threads), so a long task never fails this probe.
    livenessProbe:
      httpGet: {path: /livez, port: metrics}
      initialDelaySeconds: 5
      periodSeconds: 10
      timeoutSeconds: 3
      failureThreshold: 6
    # Ready: connected to the broker, circuits loaded (with worker.preload) and consuming.
    readinessProbe:
      httpGet: {path: /readyz, port: metrics}
      periodSeconds: 5
      timeoutSeconds: 3
      failureThreshold: 3
    {{- if $w.drainInPreStop }}
    lifecycle:
      preStop:
        # Ask the worker (PID 1) to drain and wait until it has finished or requeued its task
        # and exited; the kubelet's own SIGTERM then finds nothing left to stop.
        exec:
          command: ["/bin/sh", "-c", "kill -TERM 1; while kill -0 1 2>/dev/null; do sleep 1; done"]
    {{- end }}
    resources:
      {{- toYaml $pool.resources | nindent 6 }}
    securityContext:
      {{- toYaml $w.securityContext | nindent 6 }}
    volumeMounts:
      - {name: tmp, mountPath: /tmp}
volumes:
  - name: tmp
    emptyDir: {sizeLimit: 2Gi}
{{- end -}}
