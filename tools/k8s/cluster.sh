#!/usr/bin/env bash
# A local Kubernetes control plane on 127.0.0.1, for testing the manifests:
#   tools/k8s/cluster.sh start DIR   start it; state, logs, pids and
#                                    DIR/kubeconfig in DIR (a new or empty one)
#   tools/k8s/cluster.sh stop DIR    stop exactly the processes DIR/pids names
#                                    (safe to run twice, or after a failed start)
#
# Real: etcd, kube-apiserver (RBAC and Node authorization, the default
# admission plugins, PodSecurity among them), kube-controller-manager (every
# default controller: Deployments, ReplicaSets, EndpointSlices, disruption
# (PDB status), the HPA, garbage collection, namespaces, ...),
# kube-scheduler, and metrics-server behind the API's aggregation layer
# (metrics.k8s.io, what the HPA reads). Simulated by kwok: K8S_NODES nodes
# (3, one per zone zone-a..c, 32 CPUs each), each pod's lifecycle (scheduled
# pods become Running and Ready at once and get an IP from 10.244.0.0/16; no
# image is pulled, no process runs, probes are not run), and the pods' CPU
# and memory use: the kwok.x-k8s.io/usage-cpu annotation's value (default
# 1m), which metrics-server reads from kwok as it would from a kubelet.
# The usage of the pods of node kwok-node-0 only: all nodes share kwok's one
# address, so metrics-server's scrapes of /metrics/resource all get that
# node's pods (a test of the HPA pins its pods there).
#
# K8S_NODES=0 starts no kwok and no fake node: tools/k8s/node.sh adds a real
# one (kubelet, containerd, kube-proxy), and K8S_METRICS=kubelet points
# metrics-server at real kubelets (their TLS port) instead of kwok's.
#
# Every listener is on 127.0.0.1, on ports free when it starts. Binaries come
# from tools/k8s/build.sh (built on first use), or from $K8S_BIN.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
log() { printf 'k8s cluster: %s\n' "$*" >&2; }

# --- stop: the pids this script wrote, and only those ---------------------
# A pid is signalled only while /proc/<pid>/exe is still the binary that was
# started (a pid reused by another process is left alone).
stop_one() {
  local pidfile=$1 pid exe
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  exe=$(cat "${pidfile%.pid}.exe" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ] || break
      sleep 0.1
    done
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}
if [ "$cmd" = stop ]; then
  [ -d "$dir/pids" ] || exit 0
  # The reverse of the start order: the clients first, etcd last.
  for name in metrics-server kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [ -f "$dir/pids/$name.pid" ] && stop_one "$dir/pids/$name.pid"
  done
  log "stopped ($dir)"
  exit 0
fi
[ "$cmd" = start ] || usage

# --- start ----------------------------------------------------------------
start=$SECONDS
bin=${K8S_BIN:-$("$here/build.sh")}
nodes=${K8S_NODES:-3}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -d "$dir/pids" ] && ls "$dir"/pids/*.pid >/dev/null 2>&1; then
  log "$dir has pids from an earlier start; run: $0 stop $dir"
  exit 1
fi
mkdir -p "$dir/pki" "$dir/logs" "$dir/pids"
mkdir -m 700 "$dir/etcd"

# Ports free now (bound to 127.0.0.1, closed, handed out).
read -r etcd_port peer_port api_port kcm_port sched_port kwok_port metrics_port < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(7):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*[s.getsockname()[1] for s in socks])
EOF
)

# --- certificates (openssl): a CA, the API's serving certificate, one
# client certificate per component, the service accounts' key pair, and
# the front proxy's CA for aggregated APIs (metrics.k8s.io).
pki=$dir/pki
ossl() { openssl "$@" 2>/dev/null; }
key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
ca() { # name cn
  key "$pki/$1.key"
  ossl req -x509 -new -key "$pki/$1.key" -subj "/CN=$2" -days 3650 -out "$pki/$1.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
cert() { # ca name subject extendedKeyUsage [subjectAltName]
  key "$pki/$2.key"
  ossl req -new -key "$pki/$2.key" -subj "$3" -out "$pki/$2.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$4"
    [ -z "${5:-}" ] || echo "subjectAltName=$5"
  } > "$pki/$2.ext"
  ossl x509 -req -in "$pki/$2.csr" -CA "$pki/$1.crt" -CAkey "$pki/$1.key" -CAcreateserial \
    -days 3650 -extfile "$pki/$2.ext" -out "$pki/$2.crt"
  rm -f "$pki/$2.csr" "$pki/$2.ext"
}
service_cidr=10.96.0.0/16
ca ca kf-api-test-ca
cert ca apiserver /CN=kube-apiserver serverAuth \
  "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert ca admin "/O=system:masters/CN=kubernetes-admin" clientAuth
# The API's client certificate for kubelets (logs, exec, the proxy).
cert ca apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert ca kube-controller-manager /CN=system:kube-controller-manager clientAuth
cert ca kube-scheduler /CN=system:kube-scheduler clientAuth
# kwok plays every kubelet, and deletes pods, which system:node may not.
cert ca kwok "/O=system:masters/CN=kwok" clientAuth
# metrics-server: a client of the API (nodes, pods, delegated authn/authz)
# and an aggregated API server, whose certificate the aggregator checks
# against its Service's name.
cert ca metrics-server "/O=system:masters/CN=metrics-server" clientAuth
cert ca metrics-server-serving /CN=metrics-server serverAuth \
  "DNS:metrics-server.kube-system.svc,IP:127.0.0.1"
ca front-proxy-ca front-proxy-ca
cert front-proxy-ca front-proxy-client /CN=front-proxy-client clientAuth
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
ossl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

server=https://127.0.0.1:$api_port
kubeconfig() { # user
  cat > "$dir/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: kf-api-test
    cluster:
      server: $server
      certificate-authority: $pki/ca.crt
users:
  - name: $1
    user:
      client-certificate: $pki/$1.crt
      client-key: $pki/$1.key
contexts:
  - name: kf-api-test
    context: {cluster: kf-api-test, user: $1}
current-context: kf-api-test
EOF
}
for user in admin kube-controller-manager kube-scheduler kwok metrics-server; do kubeconfig "$user"; done
cp "$dir/admin.kubeconfig" "$dir/kubeconfig"

# --- processes --------------------------------------------------------------
launch() { # name args...
  local name=$1
  shift
  nohup "$bin/$name" "$@" > "$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/pids/$name.pid"
  readlink -f "$bin/$name" > "$dir/pids/$name.exe"
}
fail() {
  log "$1; the last lines of $dir/logs/$2.log:"
  tail -n 20 "$dir/logs/$2.log" >&2 || true
  "$0" stop "$dir"
  exit 1
}
wait_for() { # name seconds command...
  local name=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(readlink "/proc/$(cat "$dir/pids/$name.pid")/exe" 2>/dev/null)" = "$(cat "$dir/pids/$name.exe")" ] \
      || fail "$name exited" "$name"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name not ready in time" "$name"
    sleep 0.2
  done
}
healthz() { # port: a component's /healthz, over TLS (its own self-signed certificate)
  curl -fsk --max-time 2 "https://127.0.0.1:$1/healthz"
}

# A test cluster: no fsync (the data is thrown away), warnings only.
launch etcd --name kf-api-test --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "kf-api-test=http://127.0.0.1:$peer_port" \
  --unsafe-no-fsync --log-level warn
wait_for etcd 30 curl -fs --max-time 2 "http://127.0.0.1:$etcd_port/health"

# The default admission plugins (PodSecurity among them; namespaces choose
# their level with pod-security.kubernetes.io/* labels) plus NodeRestriction.
launch kube-apiserver --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --authorization-mode Node,RBAC \
  --enable-admission-plugins NodeRestriction,PodSecurity \
  --service-cluster-ip-range "$service_cidr" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
  --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --allow-privileged=false --profiling=false
wait_for kube-apiserver 60 "$bin/kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz

common=(--bind-address 127.0.0.1 --leader-elect=false --profiling=false)
launch kube-controller-manager "${common[@]}" --secure-port "$kcm_port" \
  --kubeconfig "$dir/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig "$dir/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig "$dir/kube-controller-manager.kubeconfig" \
  --cert-dir "$dir/pki/kube-controller-manager" \
  --use-service-account-credentials \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --service-cluster-ip-range "$service_cidr" \
  --flex-volume-plugin-dir "$dir/flexvolume" \
  --horizontal-pod-autoscaler-sync-period 5s
launch kube-scheduler "${common[@]}" --secure-port "$sched_port" \
  --kubeconfig "$dir/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig "$dir/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig "$dir/kube-scheduler.kubeconfig" \
  --cert-dir "$dir/pki/kube-scheduler"
# kwok: only the nodes annotated kwok.x-k8s.io/node=fake are its own; it
# gives their pods IPs from the cidr, keeps the nodes' leases, and serves
# its own endpoints (the nodes' kubelet-like port) on a free port. Pods
# annotated kwok.x-k8s.io/status=custom keep the status a test gives them.
# The stages are kwok's defaults at the pinned version (build.sh).
{
  cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: 10.244.0.1/16
  nodeIP: 127.0.0.1
  nodePort: $kwok_port
  serverAddress: 127.0.0.1:$kwok_port
  manageAllNodes: false
  manageNodesWithAnnotationSelector: kwok.x-k8s.io/node=fake
  manageNodesWithLabelSelector: ""
  disregardStatusWithAnnotationSelector: kwok.x-k8s.io/status=custom
  nodeLeaseDurationSeconds: 40
  nodeLeaseParallelism: 4
  podPlayStageParallelism: 4
  nodePlayStageParallelism: 4
  podsOnNodeSyncParallelism: 1
  enablePodsOnNodeSyncListPager: false
  enablePodsOnNodeSyncStreamWatch: true
  enableProfilingHandler: false
  enableContentionProfiling: false
---
EOF
  # kwok's kubelet-like /metrics/resource, as kwok-node-0's (see above).
  sed -e 's|^  name: metrics-resource$|  name: kwok-node-0|' \
    -e 's|^  path: "/metrics/nodes/{nodeName}/metrics/resource"$|  path: "/metrics/resource"|' \
    "$bin/kwok-stages.yaml"
} > "$dir/kwok.yaml"
[ "$nodes" -eq 0 ] || launch kwok --kubeconfig "$dir/kwok.kubeconfig" --config "$dir/kwok.yaml"
wait_for kube-controller-manager 60 healthz "$kcm_port"
wait_for kube-scheduler 60 healthz "$sched_port"

if [ "$nodes" -gt 0 ]; then
# The fake nodes: 32 CPUs and 128 GiB each, in zones zone-a, zone-b, ...
for i in $(seq 0 $((nodes - 1))); do
  zone=zone-$(echo abcdefghijklmnopqrstuvwxyz | cut -c$((i % 26 + 1)))
  cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    topology.kubernetes.io/region: local
    topology.kubernetes.io/zone: $zone
    type: kwok
status:
  capacity: {cpu: "32", memory: 128Gi, pods: "110"}
  allocatable: {cpu: "32", memory: 128Gi, pods: "110"}
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: fake
---
EOF
done > "$dir/nodes.yaml"
"$bin/kubectl" --kubeconfig "$dir/kubeconfig" apply -f "$dir/nodes.yaml" >/dev/null
wait_for kwok 60 "$bin/kubectl" --kubeconfig "$dir/kubeconfig" wait --for=condition=Ready node --all --timeout=1s
fi
# The ServiceAccount "default" of the namespace "default": the controllers run.
wait_for kube-controller-manager 60 "$bin/kubectl" --kubeconfig "$dir/kubeconfig" get serviceaccount default

# metrics-server, registered as the metrics.k8s.io API: its Service is an
# ExternalName for 127.0.0.1 (no kube-proxy here to route a ClusterIP),
# which the aggregator dials directly. It reads kwok over plain HTTP.
if [ "${K8S_METRICS:-1}" = kubelet ]; then
  # Real kubelets: their TLS port, with metrics-server's client certificate
  # (the kubelets' self-signed serving certificates are not checked).
  kubelet_access=(--kubelet-preferred-address-types InternalIP --kubelet-insecure-tls)
else
  kubelet_access=(--kubelet-preferred-address-types InternalIP --kubelet-use-node-status-port
    --deprecated-kubelet-completely-insecure)
fi
if [ "${K8S_METRICS:-1}" != 0 ]; then
  cat > "$dir/metrics-server.yaml" <<EOF
apiVersion: v1
kind: Service
metadata:
  name: metrics-server
  namespace: kube-system
spec:
  type: ExternalName
  externalName: 127.0.0.1
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {namespace: kube-system, name: metrics-server, port: $metrics_port}
  caBundle: $(base64 -w0 "$pki/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
  "$bin/kubectl" --kubeconfig "$dir/kubeconfig" apply -f "$dir/metrics-server.yaml" >/dev/null
  launch metrics-server --bind-address 127.0.0.1 --secure-port "$metrics_port" \
    --kubeconfig "$dir/metrics-server.kubeconfig" \
    --authentication-kubeconfig "$dir/metrics-server.kubeconfig" \
    --authorization-kubeconfig "$dir/metrics-server.kubeconfig" \
    --tls-cert-file "$pki/metrics-server-serving.crt" --tls-private-key-file "$pki/metrics-server-serving.key" \
    "${kubelet_access[@]}" \
    --metric-resolution 10s --kubelet-request-timeout 5s
  wait_for metrics-server 60 "$bin/kubectl" --kubeconfig "$dir/kubeconfig" \
    wait --for=condition=Available apiservice v1beta1.metrics.k8s.io --timeout=1s
fi

echo "$server" > "$dir/server"
log "up in $((SECONDS - start)) s: $server, KUBECONFIG=$dir/kubeconfig, logs in $dir/logs"
