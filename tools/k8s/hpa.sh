#!/usr/bin/env bash
# The HorizontalPodAutoscaler scales the Deployment out under (simulated)
# CPU load, as the overlay's HPA says: from 1 pod to its maxReplicas (10) at
# 50% of the 500m request, adding at most 100% or 4 pods per 15 s, and no
# further. Run by tools/k8s/test.sh against its cluster:
#   KUBECTL=... KUBECONFIG=... tools/k8s/hpa.sh MANIFESTS NAMESPACE WORKDIR
#
# The load is kwok's: each pod of the minikube overlay, annotated here
# kwok.x-k8s.io/usage-cpu=1000m (busy up to its 1 CPU limit: 200% of its
# 500m request), reports that much CPU
# through kwok's kubelet-like /metrics/resource; metrics-server serves it as
# metrics.k8s.io, and the real HPA controller (kube-controller-manager,
# synced every 5 s) acts on it. The pods are pinned to kwok-node-0, the node
# whose pods kwok reports (see cluster.sh).
set -euo pipefail
manifests=$1
ns=$2
work=$3
usage=${K8S_HPA_USAGE:-1000m}
timeout=${K8S_HPA_TIMEOUT:-150}
k() { "${KUBECTL:-kubectl}" "$@"; }
pass() { printf '  ok: %s\n' "$*"; }
die() { printf '  FAIL: %s\n' "$*" >&2; exit 1; }

printf '\n== the HPA under simulated CPU load (namespace %s, %s per pod)\n' "$ns" "$usage"
mkdir -p "$work"
cat > "$work/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$work" "$manifests/overlays/minikube")
patches:
  - target: {kind: Deployment, name: kf-api}
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: kf-api
      spec:
        template:
          metadata:
            annotations:
              kwok.x-k8s.io/usage-cpu: "$usage"
          spec:
            nodeSelector:
              kubernetes.io/hostname: kwok-node-0
EOF
k apply -k "$work" -n "$ns" > /dev/null
k rollout status deployment kf-api -n "$ns" --timeout 60s > /dev/null
read -r min max target < <(k get hpa kf-api-hpa -n "$ns" -o jsonpath --template \
  '{.spec.minReplicas} {.spec.maxReplicas} {.spec.metrics[0].resource.target.averageUtilization}{"\n"}')
request=$(k get deployment kf-api -n "$ns" -o jsonpath --template \
  '{.spec.template.spec.containers[0].resources.requests.cpu}')

# utilization|desired|why limited (the HPA's)|ready (the Deployment's); a
# field the status lacks yet stays empty.
state() {
  k get hpa kf-api-hpa -n "$ns" -o jsonpath --template \
    '{.status.currentMetrics[0].resource.current.averageUtilization}|{.status.desiredReplicas}|{.status.conditions[?(@.type=="ScalingLimited")].reason}|'
  k get deployment kf-api -n "$ns" -o jsonpath --template '{.status.readyReplicas}{"\n"}'
}
start=$SECONDS
timeline=""
last=""
first_metric=""
while :; do
  IFS='|' read -r util desired limited ready < <(state)
  now=$((SECONDS - start))
  line="util=${util:-?}% desired=${desired:-?} ready=${ready:-0} limited=${limited:-?}"
  if [ "$line" != "$last" ]; then
    timeline+="    t=${now}s $line"$'\n'
    last=$line
  fi
  [ "${util:-0}" -gt 0 ] && [ -z "$first_metric" ] && first_metric=$now
  [ "${ready:-0}" -le "$max" ] || { printf '%s' "$timeline"; die "$ready pods, above maxReplicas $max"; }
  if [ "${desired:-0}" = "$max" ] && [ "${ready:-0}" = "$max" ]; then break; fi
  [ "$now" -lt "$timeout" ] || { printf '%s' "$timeline"; die "not at maxReplicas $max within ${timeout}s"; }
  sleep 1
done
printf '%s' "$timeline"
# ScaleUpLimit: the HPA wanted more than the behavior's policies allow in
# one step, and took what they allow.
if grep -q 'limited=ScaleUpLimit' <<< "$timeline"; then
  policy="the scale-up policies limited a step (ScaleUpLimit)"
else
  policy="no step reached the scale-up policies' limit"
fi
pass "the HPA saw the pods' CPU (metrics.k8s.io) after ${first_metric}s: ${util}% of the ${request} request (target ${target}%)"
# The scale-up policies: each step at most doubles or adds 4 pods.
steps=$(printf '%s' "$timeline" | sed -n 's/.* desired=\([1-9][0-9]*\) .*/\1/p' | uniq)
prev=$min
for d in $steps; do
  [ "$d" -le $((prev * 2 > prev + 4 ? prev * 2 : prev + 4)) ] || die "a step from $prev to $d pods, more than the policies allow"
  prev=$d
done
pass "scaled from $min to $max pods in $(( SECONDS - start ))s (steps: $({ echo "$min"; echo "$steps"; } | uniq | xargs | sed 's/ / -> /g')), never above $max; $policy"
# Held at the maximum: the HPA says so rather than asking for more.
sleep 6
IFS='|' read -r util desired limited ready < <(state)
[ "$desired" = "$max" ] && [ "$ready" = "$max" ] || die "after 6 s at the maximum: desired=$desired ready=$ready"
pass "held at $max (ScalingLimited: $limited); kubectl top: $(k top pods -n "$ns" --no-headers 2>/dev/null | head -1 | xargs)"
