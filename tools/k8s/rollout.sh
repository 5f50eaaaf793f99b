#!/usr/bin/env bash
# shellcheck disable=SC2016 # kubectl's Go templates, in single quotes
# A rolling update to a new image tag keeps every old pod, ready and in the
# Service's EndpointSlices, until a new pod is ready (the base's strategy:
# maxSurge 1, maxUnavailable 0). Run by tools/k8s/test.sh against its
# cluster, on an applied overlay's namespace:
#   KUBECTL=... KUBECONFIG=... tools/k8s/rollout.sh NAMESPACE DEPLOYMENT
#
# kwok would make each new pod ready at once, which proves nothing about
# ordering; so the new pods carry kwok.x-k8s.io/status=custom, which kwok
# (started with --disregard-status-with-annotation-selector) leaves alone,
# and this script plays their kubelet: it holds each new pod unready for a
# while, checks that nothing old went away meanwhile, then reports it
# Running and Ready. The Deployment and ReplicaSet controllers do the rest.
set -euo pipefail
ns=$1
deploy=$2
replicas=${K8S_ROLLOUT_REPLICAS:-2}
hold=${K8S_ROLLOUT_HOLD:-3}
timeout=${K8S_TIMEOUT:-60}
k() { "${KUBECTL:-kubectl}" "$@"; }
pass() { printf '  ok: %s\n' "$*"; }
die() { printf '  FAIL: %s\n' "$*" >&2; exit 1; }

printf '\n== rolling update of deployment/%s in %s (%s replicas)\n' "$deploy" "$ns" "$replicas"
# The HPA leaves the count alone: it has no metrics here, so it computes no
# new replica count (and 2 is within its 1..10).
k scale deployment "$deploy" -n "$ns" --replicas "$replicas" > /dev/null
k rollout status deployment "$deploy" -n "$ns" --timeout "${timeout}s" > /dev/null
selector=$(k get deployment "$deploy" -n "$ns" -o go-template \
  --template '{{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}},{{end}}')
selector=${selector%,}
# The public Service (the LoadBalancer; kf-api-admin selects the same pods).
service=$(k get services -n "$ns" -o jsonpath \
  --template '{range .items[?(@.spec.type=="LoadBalancer")]}{.metadata.name}{"\n"}{end}' | sed -n 1p)
[ -n "$service" ] || die "no LoadBalancer Service in $ns"
old_image=$(k get deployment "$deploy" -n "$ns" -o jsonpath --template '{.spec.template.spec.containers[0].image}')
new_image=${old_image%:*}:rollout-test

# name|ip|ready|image|deleting, one line per pod of the Deployment (empty
# fields stay empty: awk -F'|').
pods() {
  k get pods -n "$ns" -l "$selector" -o jsonpath --template '{range .items[*]}{.metadata.name}|{.status.podIP}|{.status.conditions[?(@.type=="Ready")].status}|{.spec.containers[0].image}|{.metadata.deletionTimestamp}{"\n"}{end}'
}
ready_old_ips() { pods | awk -F'|' -v img="$old_image" '$3 == "True" && $4 == img && $5 == "" {print $2}' | sort; }
slice_ips() {
  k get endpointslices -n "$ns" -l "kubernetes.io/service-name=$service" -o jsonpath \
    --template '{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{"\n"}{end}' | sort
}

k patch deployment "$deploy" -n "$ns" --type json -p "[
  {\"op\": \"replace\", \"path\": \"/spec/template/spec/containers/0/image\", \"value\": \"$new_image\"},
  {\"op\": \"add\", \"path\": \"/spec/template/metadata/annotations/kwok.x-k8s.io~1status\", \"value\": \"custom\"}]" \
  > /dev/null
pass "image $old_image -> $new_image"

step=0
ip_n=0
deadline=$((SECONDS + timeout))
while :; do
  [ "$SECONDS" -lt "$deadline" ] || die "the rollout did not finish within ${timeout}s"
  # The next new pod, scheduled and not yet ready (the one kwok leaves to us).
  pending=$(pods | awk -F'|' -v img="$new_image" '$4 == img && $3 != "True" && $5 == "" {print $1; exit}')
  if [ -z "$pending" ]; then
    if [ "$(pods | awk -F'|' -v img="$new_image" '$4 == img && $3 == "True"' | wc -l)" = "$replicas" ] \
      && [ -z "$(pods | awk -F'|' -v img="$new_image" '$4 != img')" ]; then
      break
    fi
    sleep 0.3
    continue
  fi
  step=$((step + 1))
  old_before=$(ready_old_ips)
  # While the new pod is not ready: every old pod still there and ready,
  # the Service still sending to all of them, at most one pod more than
  # wanted (maxSurge 1), and the Deployment counting them available.
  sleep "$hold"
  old_now=$(ready_old_ips)
  [ "$old_now" = "$old_before" ] || die "step $step: an old pod went away before the new one was ready ($old_before -> $old_now)"
  total=$(pods | awk -F'|' '$5 == ""' | wc -l)
  [ "$total" -le $((replicas + 1)) ] || die "step $step: $total pods, more than replicas + maxSurge"
  available=$(k get deployment "$deploy" -n "$ns" -o jsonpath --template '{.status.availableReplicas}')
  [ "${available:-0}" -ge "$replicas" ] || die "step $step: only ${available:-0} available (maxUnavailable 0)"
  ready_new_ips=$(pods | awk -F'|' -v img="$new_image" '$4 == img && $3 == "True" {print $2}' | sort)
  [ "$(slice_ips)" = "$({ echo "$old_now"; echo "$ready_new_ips"; } | sed '/^$/d' | sort)" ] \
    || die "step $step: the EndpointSlices ($(slice_ips | xargs)) are not the ready pods ($old_now $ready_new_ips)"
  pass "step $step: new pod $pending unready for ${hold}s; $(echo "$old_now" | wc -w) old pods kept, ready and in the EndpointSlices; $total pods, $available available"
  # Now the pod starts: Running and Ready, with an IP outside kwok's range.
  ip_n=$((ip_n + 1))
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  k patch pod "$pending" -n "$ns" --subresource status --type strategic -p "{\"status\": {
    \"phase\": \"Running\", \"podIP\": \"10.250.0.$ip_n\", \"podIPs\": [{\"ip\": \"10.250.0.$ip_n\"}], \"startTime\": \"$now\",
    \"conditions\": [
      {\"type\": \"Initialized\", \"status\": \"True\", \"lastTransitionTime\": \"$now\"},
      {\"type\": \"ContainersReady\", \"status\": \"True\", \"lastTransitionTime\": \"$now\"},
      {\"type\": \"Ready\", \"status\": \"True\", \"lastTransitionTime\": \"$now\"}],
    \"containerStatuses\": [{\"name\": \"kf-api\", \"image\": \"$new_image\", \"imageID\": \"\", \"ready\": true,
      \"started\": true, \"restartCount\": 0, \"state\": {\"running\": {\"startedAt\": \"$now\"}}}]}}" > /dev/null
done
k rollout status deployment "$deploy" -n "$ns" --timeout "${timeout}s" > /dev/null
[ -z "$(ready_old_ips)" ] || die "old pods left after the rollout"
want=$(pods | awk -F'|' '$3 == "True" && $5 == "" {print $2}' | sort)
until [ "$(slice_ips)" = "$want" ]; do
  [ "$SECONDS" -lt "$deadline" ] || die "the EndpointSlices ($(slice_ips | xargs)) are not the new pods ($want)"
  sleep 0.3
done
pass "rolled out in $step steps: $replicas pods of $new_image, the EndpointSlices list only them ($(xargs <<< "$want"))"
