#!/usr/bin/env bash
# shellcheck disable=SC2016 # kubectl's Go templates, in single quotes
# The Kubernetes manifests against a real control plane (tools/k8s/cluster.sh:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# metrics-server on 127.0.0.1; nodes, pods and their CPU use simulated by
# kwok). For each overlay, in a fresh namespace that enforces the
# "restricted" Pod Security Standard:
#   - a server-side dry run, then `kubectl apply -k`, neither with a warning;
#   - every Deployment rolls out; each Service's EndpointSlices list exactly
#     its ready pods' IPs; each PodDisruptionBudget reports its allowed
#     disruptions;
#   - a second apply is a no-op: `kubectl diff -k` exits 0, and `kubectl
#     apply -k` writes nothing (no generation, no apply time changes) and
#     reports every object "unchanged" (PDBs aside: see below);
# then that the namespace's admission bites (a Deployment whose container
# has no securityContext gets a warning and none of its pods is admitted),
# that a rolling update to a new tag keeps the old pod, ready and in the
# Service, until the new one is ready (rollout.sh), and that the HPA settles
# at the pod count the measured CPU cost per request predicts for each of a
# series of offered loads, up to its maximum and back down, within its
# behavior's policies (hpa.py; K8S_HPA=0 skips it, about 4 minutes).
#
#   tools/k8s/test.sh
#   K8S_MANIFESTS=/path/to/k8s tools/k8s/test.sh     another copy of k8s/
#   K8S_OVERLAYS="minikube gke" tools/k8s/test.sh    some overlays only
#
# The cluster is stopped (its processes, by pid) however the script ends;
# its state directory is removed on success and kept on failure, for the logs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
manifests=$(cd "${K8S_MANIFESTS:-$root/k8s}" && pwd)
read -ra overlays <<< "${K8S_OVERLAYS:-minikube gke per-function api-key}"
timeout=${K8S_TIMEOUT:-60}

start=$SECONDS
bin=$("$here/build.sh")
# The cluster's state (etcd's data, certificates, logs) in memory if it can.
state_root=${TMPDIR:-/tmp}
[ -w /dev/shm ] && state_root=/dev/shm
state=$(mktemp -d "$state_root/kf-api-k8s.XXXXXX")
# shellcheck source=lib.sh
source "$here/lib.sh"
stop_at_exit "k8s test" "$state" "$state/logs" "$here/cluster.sh" stop "$state"
# A signal stops the step under way (bash runs a trap only once its
# foreground command is done, so the longer steps run in the background
# and are waited for), then the exit trap stops the cluster.
child=""
on_signal() {
  [ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true
  exit 130
}
trap on_signal INT TERM
step() {
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=""
  return "$rc"
}

K8S_BIN=$bin step "$here/cluster.sh" start "$state"
k() { "$bin/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }
# Runs a kubectl command; fails if it fails or writes anything to stderr
# (warnings included); its stdout goes to $out.
out=$state/out
err=$state/err
quiet() {
  if ! k "$@" > "$out" 2> "$err"; then
    cat "$out" "$err" >&2
    die "kubectl $* failed"
  fi
  if [ -s "$err" ]; then
    cat "$err" >&2
    die "kubectl $* wrote to stderr (warnings?)"
  fi
}

# The Service's EndpointSlices hold exactly the ready IPs of the pods its
# selector matches (and at least one).
endpoints_match() { # namespace service
  local selector pods slices
  selector=$(k get service "$2" -n "$1" -o go-template \
    --template '{{range $k, $v := .spec.selector}}{{$k}}={{$v}},{{end}}')
  pods=$(k get pods -n "$1" -l "${selector%,}" -o go-template --template \
    '{{range .items}}{{$ip := .status.podIP}}{{if not .metadata.deletionTimestamp}}{{range .status.conditions}}{{if and (eq .type "Ready") (eq .status "True")}}{{$ip}}{{"\n"}}{{end}}{{end}}{{end}}{{end}}' \
    | sort)
  slices=$(k get endpointslices -n "$1" -l "kubernetes.io/service-name=$2" -o jsonpath \
    --template '{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{"\n"}{end}' | sort)
  [ -n "$pods" ] && [ "$pods" = "$slices" ]
}
pdb_ready() { # namespace pdb
  local observed generation expected
  IFS='|' read -r observed generation expected < <(k get pdb "$2" -n "$1" -o jsonpath \
    --template '{.status.observedGeneration}|{.metadata.generation}|{.status.expectedPods}{"\n"}')
  [ "${observed:-0}" = "$generation" ] && [ "${expected:-0}" -ge 1 ]
}

test_overlay() { # overlay
  local overlay=$1 ns=kf-test-$1 name
  local dir=$manifests/overlays/$overlay
  say "overlay $overlay (namespace $ns)"
  restricted_namespace "$ns"

  quiet apply --dry-run=server -k "$dir" -n "$ns"
  pass "server-side dry run: $(wc -l < "$out") objects, no warnings"
  quiet apply -k "$dir" -n "$ns"
  sed 's/^/    /' "$out"
  pass "applied, no warnings"

  for name in $(k get deployments -n "$ns" -o name); do
    quiet rollout status "$name" -n "$ns" --timeout "${timeout}s"
    pass "$name rolled out: $(k get "$name" -n "$ns" -o jsonpath --template \
      '{.status.readyReplicas}/{.status.replicas} ready, {.status.updatedReplicas} updated')"
  done

  for name in $(k get services -n "$ns" -o name); do
    name=${name#service/}
    eventually "EndpointSlices of service $name list its ready pods" endpoints_match "$ns" "$name"
    pass "service $name: EndpointSlices list the ready pods' IPs ($(k get endpointslices -n "$ns" \
      -l "kubernetes.io/service-name=$name" -o jsonpath --template '{.items[*].endpoints[*].addresses[0]}'))"
  done

  for name in $(k get pdb -n "$ns" -o name); do
    name=${name#poddisruptionbudget.policy/}
    eventually "PodDisruptionBudget $name observed by the disruption controller" pdb_ready "$ns" "$name"
    local allowed healthy desired
    IFS='|' read -r allowed healthy desired < <(k get pdb "$name" -n "$ns" -o jsonpath --template \
      '{.status.disruptionsAllowed}|{.status.currentHealthy}|{.status.desiredHealthy}{"\n"}')
    [ "$allowed" -ge 1 ] && [ "$allowed" = "$((healthy - desired))" ] \
      || die "pdb $name: disruptionsAllowed=$allowed with currentHealthy=$healthy desiredHealthy=$desired"
    pass "pdb $name: disruptionsAllowed=$allowed (currentHealthy=$healthy, desiredHealthy=$desired)"
  done

  # A second apply is a no-op.
  if ! k diff -k "$dir" -n "$ns" > "$out" 2> "$err"; then
    cat "$out" "$err" >&2
    die "kubectl diff -k right after apply is not empty: the server keeps something other than the manifest (above)"
  fi
  pass "kubectl diff -k: no differences"
  # What the server wrote: each object's generation (spec changes) and the
  # time kubectl's apply last changed it (managedFields; one-second
  # resolution, hence the pause).
  written() {
    k get -k "$dir" -n "$ns" -o jsonpath --template '{range .items[*]}{.kind}/{.metadata.name} {.metadata.generation} {.metadata.managedFields[?(@.manager=="kubectl-client-side-apply")].time}{"\n"}{end}'
  }
  written > "$state/before"
  sleep 1.1
  quiet apply -k "$dir" -n "$ns"
  written > "$state/after"
  if ! diff "$state/before" "$state/after" > "$state/written"; then
    sed 's/^/    /' "$state/written" >&2
    grep -v ' unchanged$' "$out" | sed 's/^/    /' >&2 || true
    die "a second kubectl apply -k wrote objects again (generation or kubectl's managedFields time changed, above)"
  fi
  # kubectl's client-side apply always sends a PodDisruptionBudget's
  # spec.selector (its patch strategy is "replace"), so it reports the PDB
  # "configured" although the server writes nothing; anything else
  # reported so is a manifest that does not round-trip.
  if grep -v ' unchanged$' "$out" | grep -v '^poddisruptionbudget.policy/.* configured$' > "$err.changed"; then
    sed 's/^/    /' "$err.changed" >&2
    die "a second kubectl apply -k reports objects changed (above; each should be \"unchanged\")"
  fi
  local pdbs
  pdbs=$(grep -c '^poddisruptionbudget.policy/.* configured$' "$out" || true)
  pass "second kubectl apply -k: nothing written; $(grep -c ' unchanged$' "$out") objects \"unchanged\"$(
    [ "$pdbs" = 0 ] || echo ", $pdbs PodDisruptionBudget(s) \"configured\" with no write (kubectl always patches a PDB's selector)")"
}

# A Deployment whose container lacks its securityContext: kubectl warns
# (warn=restricted), and the namespace refuses its pods (enforce=restricted):
# the ReplicaSet reports ReplicaFailure and no pod exists. A bare Pod of the
# same template is refused outright.
test_admission_bites() {
  local ns=kf-test-admission broken=$state/broken
  say "admission refuses a pod without its securityContext (namespace $ns)"
  restricted_namespace "$ns"
  mkdir -p "$broken"
  cat > "$broken/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$broken" "$manifests/overlays/minikube")
patches:
  - target: {kind: Deployment, name: kf-api}
    patch: |-
      - op: remove
        path: /spec/template/spec/containers/0/securityContext
EOF
  k apply -k "$broken" -n "$ns" > "$out" 2> "$err" || { cat "$err" >&2; die "apply of the broken Deployment failed"; }
  grep -q 'would violate PodSecurity "restricted:latest"' "$err" \
    || { cat "$err" >&2; die "no PodSecurity warning for the broken Deployment"; }
  pass "kubectl warns: $(grep -o 'would violate PodSecurity.*' "$err" | sed -n 1p)"
  replica_failure() {
    k get replicasets -n "$ns" -l app.kubernetes.io/component=api -o jsonpath --template \
      '{.items[*].status.conditions[?(@.type=="ReplicaFailure")].message}' | grep -q 'violates PodSecurity'
  }
  eventually "the broken Deployment's ReplicaSet reports its pods refused" replica_failure
  [ -z "$(k get pods -n "$ns" -o name)" ] || die "a pod of the broken Deployment was admitted"
  pass "ReplicaSet: $(k get replicasets -n "$ns" -o jsonpath --template \
    '{.items[0].status.conditions[?(@.type=="ReplicaFailure")].message}' | cut -c1-150)..."
  # The bare pod: the Deployment's template as a Pod, refused with 403.
  pod_of() { # namespace deployment name
    k get deployment "$2" -n "$1" -o json | python3 -c 'import json, sys
d = json.load(sys.stdin)
print(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": sys.argv[1]},
                  "spec": d["spec"]["template"]["spec"]}))' "$3"
  }
  pod_of "$ns" kf-api broken > "$broken/pod.json"
  if k create -f "$broken/pod.json" -n "$ns" --dry-run=server > "$out" 2> "$err"; then
    die "a bare pod without securityContext was admitted"
  fi
  grep -q 'forbidden: violates PodSecurity "restricted:latest"' "$err" || { cat "$err" >&2; die "refused, but not by PodSecurity"; }
  pass "bare pod refused: $(cut -c1-160 "$err")..."
  # And the unbroken manifests' pod passes the same namespace's admission.
  k get deployment kf-api -n kf-test-minikube > /dev/null 2>&1 || return 0
  pod_of kf-test-minikube kf-api fine > "$broken/fine.json"
  quiet create -f "$broken/fine.json" -n "$ns" --dry-run=server
  pass "the same pod with the manifests' securityContext: admitted"
}

for overlay in "${overlays[@]}"; do test_overlay "$overlay"; done
test_admission_bites
if [[ " ${overlays[*]} " == *" minikube "* ]]; then
  KUBECTL="$bin/kubectl" KUBECONFIG="$state/kubeconfig" step "$here/rollout.sh" kf-test-minikube kf-api
fi
if [ "${K8S_METRICS:-1}" = 1 ] && [ "${K8S_HPA:-1}" = 1 ]; then
  restricted_namespace kf-test-hpa
  KUBECTL="$bin/kubectl" KUBECONFIG="$state/kubeconfig" step python3 "$here/hpa.py" "$manifests" kf-test-hpa "$state/hpa"
fi

ok=1
say "k8s test: all passed (overlays: ${overlays[*]}) in $((SECONDS - start)) s"
