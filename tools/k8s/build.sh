#!/usr/bin/env bash
# Builds the local Kubernetes control plane of `make k8s-test` from the Go
# module proxy, at the pins of tools/k8s/versions.env:
#   kube-apiserver kube-controller-manager kube-scheduler kubectl  (k8s.io/kubernetes)
#   kubelet kube-proxy                  (the same module: the real node of node-test.sh)
#   etcd                                                            (go.etcd.io/etcd/server/v3)
#   kwok, metrics-server                          (sigs.k8s.io/kwok, sigs.k8s.io/metrics-server)
#   containerd, containerd-shim-runc-v2, ctr     (github.com/containerd/containerd/v2)
# into .tools/k8s/<key>/bin, where <key> is a hash of the pins, the wrapper
# modules (go.mod, go.sum, sources) and the Go version. When that directory
# exists the build is skipped, so a second run takes well under a second.
#
#   tools/k8s/build.sh         build if needed; print the bin directory
#   tools/k8s/build.sh tidy    rewrite the wrapper modules' go.mod/go.sum
#                              from versions.env (after changing a pin)
#
# Heavy work runs under `nice -n 19` with GOMAXPROCS=$K8S_BUILD_PROCS (2):
# the machine is shared. The Go module cache, build cache and temporary
# files are private ones (about 4.5 GB at the end, which nothing else
# reuses), in $K8S_BUILD_WORK: by default in /dev/shm (memory) when it has
# 6 GB free, else under .tools/k8s/work; they are removed once the binaries
# are built (K8S_KEEP_CACHES=1 keeps them). Only the binaries (about 520 MB)
# stay on disk. From empty caches: about 16 CPU-minutes, 9 to 15 minutes on
# 2 cores (540 s in CI on 2026-11-30).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
procs=${K8S_BUILD_PROCS:-2}
tools_dir=${K8S_TOOLS_DIR:-$root/.tools/k8s}
modules=(kubernetes etcd sim node)
# k8s.io/kubernetes v1.X.Y publishes its staging modules as k8s.io/* v0.X.Y.
staging_version=v0.${KUBERNETES_VERSION#v1.}
kube_commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
containerd_commands=(containerd containerd-shim-runc-v2 ctr)

log() { printf 'k8s build: %s\n' "$*" >&2; }
shm_free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 {print $4}' || true)
if [ -z "${K8S_BUILD_WORK:-}" ] && [ "${shm_free_kb:-0}" -gt $((6 * 1024 * 1024)) ] && [ -w /dev/shm ]; then
  K8S_BUILD_WORK=/dev/shm/kf-api-k8s-build
fi
work=${K8S_BUILD_WORK:-$tools_dir/work}
quiet_go() {
  mkdir -p "$work/tmp"
  nice -n 19 env GOMAXPROCS="$procs" GOFLAGS= GOTOOLCHAIN=auto GOMODCACHE="$work/gomod" GOCACHE="$work/gocache" \
    GOTMPDIR="$work/tmp" "$GO" "$@"
}
clean_work() {
  if [ "${K8S_KEEP_CACHES:-0}" != 1 ] && [ -d "$work" ]; then
    chmod -R u+w "$work" && rm -rf "$work"
  fi
}

# --- Go: the installed one, or the pinned toolchain from the module proxy --
# (golang.org/toolchain is the module `go` downloads for GOTOOLCHAIN; its zip
# is checked against versions.env's h1: hash, the checksum database's.)
fetch_go() {
  local arch platform want dest zip proxy
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch=unknown ;; esac
  platform=linux_$arch
  want=$(eval echo "\${GO_TOOLCHAIN_H1_$platform:-}")
  dest="$tools_dir/go/$GO_TOOLCHAIN"
  if [ -x "$dest/bin/go" ]; then echo "$dest/bin/go"; return; fi
  [ -n "$want" ] || { log "no Go here, and no pinned toolchain for $platform: install Go (https://go.dev/dl)"; exit 1; }
  proxy=${GOPROXY:-https://proxy.golang.org}
  proxy=${proxy%%[,|]*}
  [ "$proxy" != direct ] && [ "$proxy" != off ] || proxy=https://proxy.golang.org
  mkdir -p "$tools_dir/go"
  zip="$tools_dir/go/$GO_TOOLCHAIN.zip"
  log "no Go found: fetching $GO_TOOLCHAIN ($platform) from $proxy"
  curl -fsSL --retry 3 -o "$zip" "$proxy/golang.org/toolchain/@v/v0.0.1-$GO_TOOLCHAIN.${platform/_/-}.zip"
  python3 - "$zip" "$want" "$dest" <<'EOF'
import base64, hashlib, os, stat, sys, zipfile
path, want, dest = sys.argv[1:]
with zipfile.ZipFile(path) as z:
    names = sorted(n for n in z.namelist() if not n.endswith("/"))
    # The module's h1: hash (golang.org/x/mod/sumdb/dirhash.Hash1).
    lines = "".join(f"{hashlib.sha256(z.read(n)).hexdigest()}  {n}\n" for n in names)
    got = "h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode()
    if got != want:
        sys.exit(f"k8s build: {path}: hash {got}, expected {want}")
    # Files are under golang.org/toolchain@<version>/.
    prefix = names[0][: names[0].index("@")]
    prefix = names[0][: names[0].index("/", len(prefix)) + 1]
    tmp = dest + ".tmp"
    for n in names:
        out = os.path.join(tmp, n[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(z.read(n))
        # The zip keeps no modes; `go` marks its tools executable the same way.
        if "/bin/" in "/" + n[len(prefix):] or "/pkg/tool/" in "/" + n[len(prefix):]:
            os.chmod(out, os.stat(out).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.rename(tmp, dest)
EOF
  rm -f "$zip"
  echo "$dest/bin/go"
}
if ! command -v "$GO" >/dev/null 2>&1; then
  GO=$(fetch_go)
fi

# --- tidy: go.mod files from versions.env, go.sum from the proxy ---------
if [ "${1:-}" = tidy ]; then
  # The staging modules, from k8s.io/kubernetes's own replace block.
  kube_mod=$(quiet_go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  mapfile -t staging < <(sed -n 's|^[[:space:]]*\(k8s.io/[a-z-]*\) => ./staging/.*|\1|p' "$kube_mod")
  [ "${#staging[@]}" -gt 10 ] || { log "no staging modules found in $kube_mod"; exit 1; }
  {
    echo "// Generated by tools/k8s/build.sh tidy from versions.env: do not edit."
    echo "// k8s.io/kubernetes's replace directives point into its ./staging, which"
    echo "// a module that requires it cannot see, so each is replaced here by the"
    echo "// published module of the same release."
    echo "module kf-api/tools/k8s/kubernetes"
    echo
    echo "go 1.25.0"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    for m in "${staging[@]}"; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
    echo ")"
    echo
    echo "tool ("
    for c in "${kube_commands[@]}"; do printf '\tk8s.io/kubernetes/cmd/%s\n' "$c"; done
    echo ")"
  } > "$here/kubernetes/go.mod"
  {
    echo "// Generated by tools/k8s/build.sh tidy from versions.env: do not edit."
    echo "module kf-api/tools/k8s/etcd"
    echo
    echo "go 1.25.0"
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  } > "$here/etcd/go.mod"
  {
    echo "// Generated by tools/k8s/build.sh tidy from versions.env: do not edit."
    echo "// The simulated parts: kwok, and metrics-server reading kwok's usage."
    echo "module kf-api/tools/k8s/sim"
    echo
    echo "go 1.26.4"
    echo
    echo "require ("
    printf '\tsigs.k8s.io/kwok %s\n' "$KWOK_VERSION"
    printf '\tsigs.k8s.io/metrics-server %s\n' "$METRICS_SERVER_VERSION"
    echo ")"
    echo
    echo "tool ("
    echo "	sigs.k8s.io/kwok/cmd/kwok"
    echo "	sigs.k8s.io/metrics-server/cmd/metrics-server"
    echo ")"
  } > "$here/sim/go.mod"
  {
    echo "// Generated by tools/k8s/build.sh tidy from versions.env: do not edit."
    echo "// The real node's container runtime (runc itself is Debian's)."
    echo "module kf-api/tools/k8s/node"
    echo
    echo "go 1.25.0"
    echo
    printf 'require github.com/containerd/containerd/v2 %s\n' "$CONTAINERD_VERSION"
    echo
    echo "tool ("
    for c in "${containerd_commands[@]}"; do printf '\tgithub.com/containerd/containerd/v2/cmd/%s\n' "$c"; done
    echo ")"
  } > "$here/node/go.mod"
  for m in "${modules[@]}"; do
    rm -f "$here/$m/go.sum"
    log "go mod tidy in tools/k8s/$m"
    (cd "$here/$m" && quiet_go mod tidy)
  done
  clean_work
  # tidy may add requirements; the pins themselves must have survived.
  exec "$0" check
fi

# --- the wrapper modules must be at versions.env's pins -------------------
check_pins() {
  local ok=1
  # A requirement, alone or in a require block, "// indirect" or not.
  has() { grep -Eq "^(require )?[[:space:]]*$2 $3( |\$)" "$here/$1/go.mod"; }
  has kubernetes k8s.io/kubernetes "$KUBERNETES_VERSION" || ok=0
  grep -Eq "k8s.io/api => k8s.io/api $staging_version\$" "$here/kubernetes/go.mod" || ok=0
  has etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" || ok=0
  has sim sigs.k8s.io/kwok "$KWOK_VERSION" || ok=0
  has sim sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION" || ok=0
  has node github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" || ok=0
  if [ "$ok" = 0 ]; then
    log "tools/k8s/*/go.mod do not match tools/k8s/versions.env; run tools/k8s/build.sh tidy"
    exit 1
  fi
}
check_pins
[ "${1:-}" = check ] && { log "go.mod files match versions.env"; exit 0; }

# --- build, unless this key's binaries are there --------------------------
go_version=$("$GO" env GOVERSION)
key=$({
  # The pins (not the comments, nor the bootstrap toolchain: the Go that
  # builds is keyed by its version below).
  grep -Ev '^[[:space:]]*(#|$)|^GO_TOOLCHAIN' "$here/versions.env"
  for m in "${modules[@]}"; do cat "$here/$m/go.mod" "$here/$m/go.sum"; done
  cat "$here/etcd/main.go"
  echo "$go_version"
} | sha256sum | cut -c1-16)
bin="$tools_dir/$key/bin"
# kwok-stages.yaml: for kwok's configuration, the stages kwokctl would give it
# (a node becomes Ready and keeps a lease; a pod becomes Running and Ready,
# completes, is deleted) and the resource-usage simulation, taken from the
# kwok module's own kustomize/ files at the pinned version.
want=("${kube_commands[@]}" etcd kwok metrics-server kwok-stages.yaml "${containerd_commands[@]}")

missing() { local b; for b in "$@"; do [ -e "$bin/$b" ] || return 0; done; return 1; }
if ! missing "${want[@]}"; then
  echo "$bin"
  exit 0
fi

# Room first: a build that fills the disk breaks everything else running.
free_mb() { mkdir -p "$1" && df -Pm "$1" | awk 'NR == 2 {print $4}'; }
need() { # dir MB what
  local have
  have=$(free_mb "$1")
  if [ "$have" -lt "$2" ]; then
    log "$3 needs about $2 MB free in $1, which has $have MB (set K8S_BUILD_WORK or K8S_TOOLS_DIR)"
    exit 1
  fi
}
mount_of() { mkdir -p "$1" && df -P "$1" | awk 'NR == 2 {print $6}'; }
work_mb=1500
missing "${kube_commands[@]}" && work_mb=3600
need "$tools_dir" 600 "the binaries"  # (the older keys' are not counted)
if [ "$(mount_of "$work")" = "$(mount_of "$tools_dir")" ]; then
  need "$work" $((work_mb + 600)) "the build (module and build caches, and the binaries)"
else
  need "$work" "$work_mb" "the build (module and build caches)"
fi

start=$SECONDS
log "building Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION," \
  "metrics-server $METRICS_SERVER_VERSION with $go_version into $bin"
log "(from empty caches 9 to 15 minutes on 2 cores; under nice -n 19, GOMAXPROCS=$procs)"
# Older keys' binaries (about 520 MB each) are of no further use.
for old in "$tools_dir"/*/; do
  case "$old" in "$tools_dir/$key/" | "$tools_dir/work/" | "$tools_dir/go/") ;; *) rm -rf "$old" ;; esac
done
mkdir -p "$bin" "$work/tmp"
# Each artifact is built beside its final name and renamed into place, so
# an interrupted build leaves no half-written binary, and the next run
# builds only what is missing.
tmp="$bin/.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
install_tmp() { local f; for f in "$@"; do mv -f "$tmp/$f" "$bin/$f"; done; }

if missing "${kube_commands[@]}"; then
  # Version stamps as Kubernetes's own build sets them (hack/lib/version.sh):
  # the API's /version and kubectl's version skew warning read them.
  minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  kube_ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$here/kubernetes" && quiet_go build -p "$procs" -trimpath -ldflags "$kube_ldflags" -o "$tmp/" \
    "${kube_commands[@]/#/k8s.io/kubernetes/cmd/}")
  install_tmp "${kube_commands[@]}"
  log "kubernetes done ($((SECONDS - start)) s)"
fi
if missing etcd; then
  (cd "$here/etcd" && quiet_go build -p "$procs" -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
  install_tmp etcd
  log "etcd done ($((SECONDS - start)) s)"
fi
if missing kwok metrics-server; then
  (cd "$here/sim" && quiet_go build -p "$procs" -trimpath -ldflags "-s -w" -o "$tmp/" \
    sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/metrics-server/cmd/metrics-server)
  install_tmp kwok metrics-server
  log "kwok and metrics-server done ($((SECONDS - start)) s)"
fi
if missing "${containerd_commands[@]}"; then
  # Static, as containerd's own release builds are; without the btrfs and
  # devmapper snapshotters (overlayfs is the node's).
  (cd "$here/node" && CGO_ENABLED=0 quiet_go build -p "$procs" -trimpath -tags no_btrfs,no_devmapper \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" -o "$tmp/" \
    "${containerd_commands[@]/#/github.com/containerd/containerd/v2/cmd/}")
  install_tmp "${containerd_commands[@]}"
  log "containerd done ($((SECONDS - start)) s)"
fi
if missing kwok-stages.yaml; then
  kwok_src=$(cd "$here/sim" && quiet_go mod download -json sigs.k8s.io/kwok \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  for f in stage/node/fast/node-initialize.yaml \
    stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    stage/pod/fast/pod-ready.yaml stage/pod/fast/pod-complete.yaml stage/pod/fast/pod-delete.yaml \
    metrics/resource/metrics-resource.yaml metrics/usage/usage-from-annotation.yaml; do
    echo "# sigs.k8s.io/kwok@$KWOK_VERSION kustomize/$f"
    cat "$kwok_src/kustomize/$f"
    echo "---"
  done > "$tmp/kwok-stages.yaml"
  install_tmp kwok-stages.yaml
fi

rm -rf "$tmp"
trap - EXIT
clean_work
log "built in $((SECONDS - start)) s"
echo "$bin"
