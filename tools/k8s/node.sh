#!/usr/bin/env bash
# A real one-node Kubernetes cluster, inside namespaces of its own:
#
#   tools/k8s/node.sh up DIR [ARCHIVE...]   start it; import each OCI archive (the image)
#   tools/k8s/node.sh run DIR CMD...        run CMD inside it (KUBECONFIG set, kubectl on PATH)
#   tools/k8s/node.sh down DIR              stop it and clean up (safe to run twice)
#
# Inside: the control plane of cluster.sh (no kwok), containerd v2 with
# Debian's runc, the kubelet (cgroup v1 allowed: failCgroupV1: false, the
# cgroupfs driver, a cgroup root of its own), kube-proxy in iptables mode
# with Debian's iptables, Debian's CNI plugins (a bridge, host-local
# addresses, portmap), metrics-server scraping the real kubelet, and a
# LoadBalancer controller (lb.py) that gives each LoadBalancer Service an
# address from the node's own subnet, as a cloud or `minikube tunnel` would.
#
# What it does to the host, and undoes: everything runs in new network,
# mount and pid namespaces (unshare), so addresses, routes, iptables rules,
# mounts (tmpfs over /run, /var/lib, /var/log; the kubelet's volumes) and
# processes are the namespaces' own, and vanish with them. The kernel
# settings the kubelet would change for the whole machine (vm.overcommit_memory,
# vm.panic_on_oom, kernel.panic, kernel.panic_on_oops, kernel.keys.*) are
# masked inside the mount namespace by files holding the values it wants, so
# it finds them set. What is shared with the host: the cgroup hierarchies,
# where the node's cgroups live under /kf-api-node (removed by `down`), and
# the state directory DIR. Needs root, Linux, cgroup v1 or hybrid.
#
# Addresses (only inside the network namespace): the node 10.250.0.2 on a
# veth pair (this kernel may lack the dummy driver), pods 10.244.0.0/24 on
# the bridge cni0, Services 10.96.0.0/16, LoadBalancer addresses
# 10.250.0.100 and up.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { sed -n 's/^#   //p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2
log() { printf 'k8s node: %s\n' "$*" >&2; }
node_ip=10.250.0.2
node_name=kf-node
cgroup_root=kf-api-node

holder() { cat "$dir/holder.pid" 2>/dev/null || true; }
# The pid 1 of the namespaces (the holder's child), as the host sees it.
ns_pid() { cat "$dir/ns.pid" 2>/dev/null || true; }
inside() { nsenter -t "$(ns_pid)" -n -m -p --wd="$PWD" -- "$@"; }

cgroup_dirs() { # every hierarchy's /kf-api-node
  local m
  for m in /sys/fs/cgroup/*/; do
    [ -d "$m$cgroup_root" ] && echo "$m$cgroup_root"
  done
  return 0
}

down() {
  [ -d "$dir" ] || return 0
  local pid
  pid=$(ns_pid || true)
  if [ -n "$pid" ] && [ -e "/proc/$pid/ns/pid" ]; then
    # The pods first (the kubelet stops their containers), then the rest.
    # Killing the namespaces' pid 1 then kills whatever is left in them.
    inside "$dir/bin/kubectl" --kubeconfig "$dir/cp/kubeconfig" delete pods --all -A \
      --grace-period 1 --timeout 20s > /dev/null 2>&1 || true
    inside "$here/cluster.sh" stop "$dir/cp" 2>/dev/null || true
  fi
  local h
  h=$(holder || true)
  if [ -n "$h" ] && [ "$(cat "/proc/$h/comm" 2>/dev/null)" = unshare ]; then
    kill -KILL "$h" 2>/dev/null || true
  fi
  if [ -n "$pid" ]; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # Every process of the node's cgroups must be gone before they can go.
  local deadline=$((SECONDS + 30)) left
  while :; do
    left=$(cgroup_dirs | while read -r d; do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | wc -l)
    [ "$left" -eq 0 ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "processes still in /$cgroup_root after 30 s; killing them"
      cgroup_dirs | while read -r d; do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done \
        | sort -u | xargs -r kill -KILL 2>/dev/null || true
      deadline=$((SECONDS + 10))
    fi
    sleep 0.2
  done
  cgroup_dirs | while read -r d; do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  if [ -n "$(cgroup_dirs)" ]; then
    log "could not remove: $(cgroup_dirs | tr '\n' ' ')"
  fi
  rm -f "$dir/holder.pid" "$dir/ns.pid"
  log "down ($dir)"
}

case "$cmd" in
  down)
    down
    exit 0
    ;;
  run)
    [ -n "$(ns_pid)" ] || { log "no node in $dir"; exit 1; }
    exec nsenter -t "$(ns_pid)" -n -m -p --wd="$PWD" -- env KUBECONFIG="$dir/cp/kubeconfig" \
      PATH="$dir/bin:$PATH" "$@"
    ;;
  up) ;;
  *) usage ;;
esac

# --- up ---------------------------------------------------------------------
start=$SECONDS
[ "$(id -u)" = 0 ] || { log "needs root (namespaces, cgroups, containers)"; exit 1; }
[ -d /sys/fs/cgroup/memory ] || { log "needs cgroup v1 or hybrid (/sys/fs/cgroup/memory)"; exit 1; }
for tool in unshare nsenter runc iptables ip openssl; do
  command -v "$tool" > /dev/null || { log "$tool is missing (make k8s-node installs it)"; exit 1; }
done
cni=/usr/lib/cni
[ -x "$cni/bridge" ] || { log "the CNI plugins are missing ($cni; Debian's containernetworking-plugins)"; exit 1; }
bin=${K8S_BIN:-$("$here/build.sh")}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -n "$(ns_pid)" ] && [ -e "/proc/$(ns_pid)" ]; then
  log "$dir already has a node; run: $0 down $dir"
  exit 1
fi
mkdir -p "$dir/logs" "$dir/pki" "$dir/sysctl" "$dir/cni"
ln -sfn "$bin" "$dir/bin"
started=0
trap '[ "$started" = 1 ] || { log "start failed; the logs are in $dir/logs"; down; }' EXIT

# The namespaces, held by a pid 1 that only reaps (orphans come to it).
setsid unshare --net --mount --propagation private --pid --fork --mount-proc -- \
  python3 -c '
import os, signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT})
while True:
    if signal.sigwait({signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}) != signal.SIGCHLD:
        os._exit(0)
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
' < /dev/null > "$dir/logs/init.log" 2>&1 &
echo $! > "$dir/holder.pid"
for _ in $(seq 100); do
  child=$(awk '{print $1}' "/proc/$(holder)/task/$(holder)/children" 2>/dev/null || true)
  [ -n "$child" ] && break
  sleep 0.05
done
[ -n "${child:-}" ] || { log "the namespaces did not start"; false; }
echo "$child" > "$dir/ns.pid"

# Inside: the network, private filesystems, the masked kernel settings.
printf '%s\n' 1 > "$dir/sysctl/overcommit_memory"
printf '%s\n' 0 > "$dir/sysctl/panic_on_oom"
printf '%s\n' 10 > "$dir/sysctl/panic"
printf '%s\n' 1 > "$dir/sysctl/panic_on_oops"
printf '%s\n' 1000000 > "$dir/sysctl/root_maxkeys"
printf '%s\n' 25000000 > "$dir/sysctl/root_maxbytes"
inside sh -euc "
  ip link set lo up
  ip link add kf-node0 type veth peer name kf-node1
  ip addr add $node_ip/24 dev kf-node0
  ip link set kf-node0 up
  ip link set kf-node1 up
  ip route add default dev kf-node0
  for d in /run /var/lib /var/log; do mount -t tmpfs -o mode=755 tmpfs \$d; done
  for f in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops \
           kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
    mount --bind $dir/sysctl/\$(basename \$f) /proc/sys/\$f
  done
"

# The node's cgroup root in every hierarchy (cpuset's needs its CPUs and
# memory nodes before a process may join).
for m in /sys/fs/cgroup/*/; do
  case "$m" in */unified/) continue ;; esac
  mkdir -p "$m$cgroup_root"
  if [ -f "${m}cpuset.cpus" ]; then
    cat "${m}cpuset.cpus" > "$m$cgroup_root/cpuset.cpus"
    cat "${m}cpuset.mems" > "$m$cgroup_root/cpuset.mems"
  fi
done

# --- the control plane ---------------------------------------------------------
inside env K8S_BIN="$bin" K8S_NODES=0 K8S_METRICS=kubelet "$here/cluster.sh" start "$dir/cp"
server=$(cat "$dir/cp/server")
k() { inside "$bin/kubectl" --kubeconfig "$dir/cp/kubeconfig" "$@"; }

# Certificates for the node's kubelet (Node authorization) and kube-proxy.
pki=$dir/pki
cp_pki=$dir/cp/pki
client_cert() { # name subject
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key" 2>/dev/null
  openssl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' \
    > "$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$cp_pki/ca.crt" -CAkey "$cp_pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
  rm -f "$pki/$1.csr" "$pki/$1.ext"
  cat > "$dir/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: kf-api-node
    cluster: {server: $server, certificate-authority: $cp_pki/ca.crt}
users:
  - name: $1
    user: {client-certificate: $pki/$1.crt, client-key: $pki/$1.key}
contexts:
  - name: kf-api-node
    context: {cluster: kf-api-node, user: $1}
current-context: kf-api-node
EOF
}
client_cert kubelet "/O=system:nodes/CN=system:node:$node_name"
client_cert kube-proxy "/CN=system:kube-proxy"

# --- containerd -------------------------------------------------------------------
# The pods' sandbox ("pause") image: a static reaper built here, since no
# registry is reachable; pinned by containerd's CRI as its sandbox image.
pause_image=localhost/kf-api/pause:local
# An unprivileged pod process may not lower its oom_score_adj where the
# runtime itself lacks CAP_SYS_RESOURCE (some sandboxes): detect, don't assume.
restrict_oom=false
if ! inside sh -c 'echo -999 > /proc/self/oom_score_adj' 2>/dev/null; then
  restrict_oom=true
fi
cat > "$dir/containerd.toml" <<EOF
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "$pause_image"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = $restrict_oom
  enable_selinux = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$cni"]
    conf_dir = "$dir/cni"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "$(command -v runc)"
      SystemdCgroup = false
EOF
cat > "$dir/cni/10-kf-api.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kf-api",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
inside sh -c "PATH=$bin:\$PATH nohup $bin/containerd --config $dir/containerd.toml > $dir/logs/containerd.log 2>&1 < /dev/null &"
ctr() { inside "$bin/ctr" --address /run/containerd/containerd.sock -n k8s.io "$@"; }
deadline=$((SECONDS + 30))
until ctr version > /dev/null 2>&1; do
  [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$dir/logs/containerd.log" >&2; log "containerd did not start"; false; }
  sleep 0.2
done

# The pause image: one static binary, as an OCI archive ctr imports.
"$here/pause.sh" "$dir/pause" "$pause_image"
ctr images import --no-unpack=false "$dir/pause/pause.tar" > /dev/null
for archive in "$@"; do
  archive=$(readlink -f "$archive")
  ctr images import "$archive" > /dev/null
done
# The names the CRI looks up: a pod's `image: kf-api:1.0.0` is normalized
# as Docker references are (a default domain, and library/ for one path
# component), so each imported short name gets that name too.
for ref in $(ctr images ls -q | grep -v '^sha256:'); do
  if [[ $ref == */* ]]; then
    first=${ref%%/*}
    # Already has a domain.
    [[ $first == *.* || $first == *:* || $first == localhost ]] && continue
    full=docker.io/$ref
  else
    full=docker.io/library/$ref
  fi
  ctr images tag --force "$ref" "$full" > /dev/null
  log "image $ref (as $full)"
done

# --- the kubelet ---------------------------------------------------------------
cat > "$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Kubernetes 1.35 refuses cgroup v1 unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_root
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $cp_pki/ca.crt}
authorization: {mode: Webhook}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
failSwapOn: false
# No cluster DNS here: pods get the node's resolv.conf.
resolvConf: /etc/resolv.conf
# A test node: a full disk is the host's business, not a reason to evict.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
inside sh -c "nohup $bin/kubelet --config $dir/kubelet.yaml --kubeconfig $dir/kubelet.kubeconfig \
  --hostname-override $node_name --node-ip $node_ip --v 1 > $dir/logs/kubelet.log 2>&1 < /dev/null &"

# --- kube-proxy -------------------------------------------------------------------
cat > "$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $dir/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $node_name
clusterCIDR: 10.244.0.0/16
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the conntrack table's size and timeouts alone: they are the host's.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
inside sh -c "nohup $bin/kube-proxy --config $dir/kube-proxy.yaml > $dir/logs/kube-proxy.log 2>&1 < /dev/null &"

deadline=$((SECONDS + 90))
until k wait --for=condition=Ready "node/$node_name" --timeout=1s > /dev/null 2>&1; do
  [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$dir/logs/kubelet.log" >&2; log "the node is not Ready"; false; }
  sleep 0.5
done
until inside curl -fs --max-time 2 http://127.0.0.1:10256/healthz > /dev/null 2>&1; do
  [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$dir/logs/kube-proxy.log" >&2; log "kube-proxy is not healthy"; false; }
  sleep 0.5
done

# --- the LoadBalancer controller ---------------------------------------------
inside sh -c "nohup python3 $here/lb.py --kubectl $bin/kubectl --kubeconfig $dir/cp/kubeconfig \
  --first 10.250.0.100 > $dir/logs/lb.log 2>&1 < /dev/null &"

started=1
log "up in $((SECONDS - start)) s: node $node_name ($node_ip), API $server;" \
  "run commands inside with: $0 run $dir kubectl get nodes"
