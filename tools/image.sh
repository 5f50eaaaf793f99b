#!/usr/bin/env bash
# The Dockerfile, built without a daemon (Debian's buildah), into an OCI
# archive per architecture:
#
#   tools/image.sh build ARCH...     target/oci/kf-api-ARCH.tar (amd64, arm64), tagged kf-api:1.0.0
#   tools/image.sh extract ARCH DIR  the archive's /opt/kf-api, laid out in DIR (what make test-shipped tests)
#   tools/image.sh bases ARCH        only the base images (pulled, or stood in)
#
# Base images: each FROM of the Dockerfile is used from local storage if it
# is there, else pulled; where no registry answers (this machine, CI), a
# local stand-in with the same name is built and the build says so:
#   - the Go and Rust build stages: Debian bookworm (debootstrap, the
#     machine's apt mirror) plus this machine's Go and Rust toolchains, laid
#     out and configured as the official images are (GOPATH=/go, /usr/local/go;
#     RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo, the
#     Dockerfile's RUST_VERSION with both Rust targets);
#   - the runtime stage (Amazon Linux 2023's Lambda base): a distroless-like
#     root of Debian's libc6, libgcc-s1, netbase and tzdata for the target
#     architecture (dpkg-deb -x), with the machine's CA bundle (the build
#     stages get it too, and PIP_CERT, so they reach the registries here). glibc 2.36,
#     newer than AL2023's 2.34 that the binaries are built against
#     (check_artifacts.py holds them to it), so the same binaries run on both.
# Bookworm is pinned as a suite, not package by package: the stable archive
# changes only by security fixes, and a version pin breaks when one lands.
#
# Storage is the project's own (.tools/containers, overlay), and every
# buildah call runs in a private mount namespace, so no mount reaches the
# host's table; RUN steps use runc (--isolation oci) on the host network.
# A second build reuses buildah's layer cache.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
store=${KF_IMAGE_STORE:-$root/.tools/containers}
out_dir=${KF_IMAGE_OUT:-$root/target/oci}
tag=${KF_IMAGE_TAG:-kf-api:1.0.0}
log() { printf 'image: %s\n' "$*" >&2; }

# buildah in a mount namespace of its own (overlay mounts stay there).
bh() {
  unshare --mount --propagation private -- \
    buildah --root "$store/storage" --runroot "$store/run" --storage-driver overlay "$@"
}

# --- the Dockerfile's FROM lines, with its ARG defaults substituted --------
froms() {
  python3 - Dockerfile <<'EOF'
import re, sys
args, stages, names = {}, set(), []
for line in open(sys.argv[1]):
    m = re.match(r"ARG\s+(\w+)=(\S+)", line)
    if m and not names:
        args[m[1]] = m[2]  # the global ARGs, before the first FROM
    m = re.match(r"FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
    if m:
        name = re.sub(r"\$\{?(\w+)\}?", lambda a: args.get(a[1], a[0]), m[1])
        if name not in stages and name not in names:
            names.append(name)
        if m[2]:
            stages.add(m[2])
print("\n".join(names))
EOF
}
dockerfile_arg() { sed -n "s/^ARG $1=//p" Dockerfile | head -n 1; }

have_image() { bh inspect --type image "$1" >/dev/null 2>&1; }
mirror() {
  # The machine's own Debian mirror, as apt is configured here.
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null || true; } \
    | sed -n -e 's/^URIs: *\([^ ]*debian\)$/\1/p' -e 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*debian\) .*/\2/p' | head -n 1
}

# A Debian bookworm root for the build stages, made once and reused.
bookworm_root() {
  local dir=$store/rootfs/bookworm
  if [ ! -f "$dir/.done" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    log "debootstrap bookworm (build stages' base, about 2 minutes)"
    debootstrap --variant=minbase \
      --include=ca-certificates,curl,git,gcc,libc6-dev,make,pkg-config,python3,xz-utils \
      bookworm "$dir" "$(mirror)" > "$store/debootstrap.log" 2>&1 \
      || { tail -n 20 "$store/debootstrap.log" >&2; exit 1; }
    rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"*
    touch "$dir/.done"
  fi
  # This machine's trust: its CA bundle (which may hold a CA of its egress
  # proxy that Debian's own does not), so apt, pip, cargo and go inside the
  # build reach the registries as they do here.
  cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
  echo "$dir"
}

from_root() { # name rootfs config-args...: commit a directory as an image
  local name=$1 dir=$2 ctr
  shift 2
  ctr=$(bh from --pull=never scratch)
  bh copy --quiet "$ctr" "$dir/" / > /dev/null
  bh config "$@" "$ctr"
  bh commit --quiet --rm --format docker "$ctr" "$name" > /dev/null
}

standin_go() { # name
  local base work
  base=$(bookworm_root)
  work=$store/rootfs/go
  rm -rf "$work" && mkdir -p "$work/usr/local" "$work/go/bin"
  cp -a "$(go env GOROOT)" "$work/usr/local/go"
  from_root "$1" "$base" --env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env GOPATH=/go --env GOTOOLCHAIN=local --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt --workingdir /go
  # The toolchain as a layer of its own on top of bookworm.
  local ctr
  ctr=$(bh from --pull=never "$1")
  bh copy --quiet "$ctr" "$work/" / > /dev/null
  bh commit --quiet --rm --format docker "$ctr" "$1" > /dev/null
  rm -rf "$work"
}

standin_rust() { # name
  local base work version toolchain
  base=$(bookworm_root)
  version=$(dockerfile_arg RUST_VERSION)
  # The Dockerfile's version, installed only if this machine lacks it.
  rustup run "$version" rustc --version >/dev/null 2>&1 \
    || rustup toolchain install --profile minimal "$version" >&2
  rustup target add --toolchain "$version" x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu >&2
  toolchain=$(rustup run "$version" rustc --print sysroot)
  work=$store/rootfs/rust
  rm -rf "$work" && mkdir -p "$work/usr/local/rustup/toolchains" "$work/usr/local/cargo/bin"
  cp -a "$toolchain" "$work/usr/local/rustup/toolchains/$version-x86_64-unknown-linux-gnu"
  rm -rf "$work/usr/local/rustup/toolchains/$version-x86_64-unknown-linux-gnu/share/doc"
  # rustup itself and its proxies, as the official image has them.
  cp "$(command -v rustup)" "$work/usr/local/cargo/bin/rustup"
  for proxy in cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt rust-gdb rust-lldb rls; do
    ln -s rustup "$work/usr/local/cargo/bin/$proxy"
  done
  printf 'default_toolchain = "%s"\nprofile = "minimal"\nversion = "12"\n\n[overrides]\n' "$version" \
    > "$work/usr/local/rustup/settings.toml"
  from_root "$1" "$base" --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env RUST_VERSION="$version" --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt
  local ctr
  ctr=$(bh from --pull=never "$1")
  bh copy --quiet "$ctr" "$work/" / > /dev/null
  bh commit --quiet --rm --format docker "$ctr" "$1" > /dev/null
  rm -rf "$work"
}

standin_runtime() { # name arch
  local arch=$2 work debs pkg
  work=$store/rootfs/runtime-$arch
  debs=$store/debs-$arch
  rm -rf "$work" "$debs" && mkdir -p "$work/tmp" "$work/etc/ssl/certs" "$debs"
  chmod 1777 "$work/tmp"
  if [ "$arch" != "$(dpkg --print-architecture)" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    dpkg --add-architecture "$arch"
    apt-get update -qq
  fi
  for pkg in libc6 libgcc-s1 netbase tzdata; do
    (cd "$debs" && apt-get download -qq "$pkg:$arch" 2>/dev/null || apt-get download -qq "$pkg")
  done
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$work"; done
  cp /etc/ssl/certs/ca-certificates.crt "$work/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$work/usr/share/doc" "$work/usr/share/man" "$work/usr/share/lintian"
  echo "nonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin" > "$work/etc/passwd"
  echo "nonroot:x:65532:" > "$work/etc/group"
  from_root "$1" "$work" --arch "$arch" --os linux \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  rm -rf "$work" "$debs"
}

bases() { # arch
  local arch=$1 name key
  while read -r name; do
    key=$name
    # The runtime stage is per architecture; the build stages run on the
    # build machine's.
    case "$name" in golang:* | rust:*) ;; *) key="$name-$arch" ;; esac
    if have_image "$key"; then
      continue
    fi
    if timeout 60 "$0" _pull "$name" "$arch" >/dev/null 2>&1; then
      [ "$key" = "$name" ] || bh tag "$name" "$key"
      log "$name: pulled"
      continue
    fi
    log "$name: no registry answered; building a local stand-in of the same name (see tools/image.sh)"
    case "$name" in
      golang:*) standin_go "$name" ;;
      rust:*) standin_rust "$name" ;;
      *) standin_runtime "$key" "$arch" ;;
    esac
    echo "$name" >> "$store/standins"
  done < <(froms)
}

build() { # arch
  local arch=$1 runtime out start=$SECONDS
  bases "$arch"
  mkdir -p "$out_dir"
  out=$out_dir/kf-api-$arch.tar
  runtime=$(froms | tail -n 1)
  # The runtime base of this architecture under the name the Dockerfile
  # uses (the build stages' bases are the build machine's).
  if have_image "$runtime-$arch"; then
    bh tag "$runtime-$arch" "$runtime"
  fi
  log "buildah bud for linux/$arch -> $out"
  # buildah 1.28 sets none of TARGETARCH, TARGETPLATFORM, BUILDPLATFORM
  # itself; and without the runtime stage's --platform=$TARGETPLATFORM it
  # looks the runtime base up for the build stages' platform.
  bh bud --pull=never --layers --format docker --isolation oci --network host \
    --build-arg TARGETARCH="$arch" --build-arg TARGETPLATFORM="linux/$arch" \
    --build-arg BUILDPLATFORM="linux/$(dpkg --print-architecture)" \
    --arch "$arch" --os linux -t "$tag" -f Dockerfile . >&2
  rm -f "$out"
  bh push --quiet "$tag" "oci-archive:$out:$tag" >&2
  log "built $out in $((SECONDS - start)) s ($(du -h "$out" | cut -f1))"
}

# The image's /opt/kf-api, from the archive's layers (OCI layout, in order).
extract() { # arch dir
  local archive=$out_dir/kf-api-$1.tar dest=$2
  rm -rf "$dest" && mkdir -p "$dest"
  python3 - "$archive" "$dest" <<'EOF'
import io, json, os, shutil, sys, tarfile
archive, dest = sys.argv[1:]
with tarfile.open(archive) as oci:
    def blob(digest):
        return oci.extractfile("blobs/" + digest.replace(":", "/")).read()
    index = json.loads(oci.extractfile("index.json").read())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))) as t:
            for m in t.getmembers():
                name = m.name.lstrip("./")
                if not name.startswith("opt/kf-api/") or not (m.isfile() or m.isdir()):
                    continue
                path = os.path.join(dest, name[len("opt/kf-api/"):])
                if m.isdir():
                    os.makedirs(path, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    shutil.copyfileobj(t.extractfile(m), f)
                os.chmod(path, m.mode | 0o700)
EOF
}

case "${1:-}" in
  build)
    shift
    [ $# -gt 0 ] || set -- "$(dpkg --print-architecture)"
    for arch in "$@"; do build "$arch"; done
    if [ -s "$store/standins" ]; then
      log "stood in locally (not the published images): $(sort -u "$store/standins" | tr '\n' ' ')"
    fi
    ;;
  extract) extract "$2" "$3" ;;
  bases) bases "$2" ;;
  _pull) bh pull --quiet --arch "$3" "$2" ;;
  *)
    sed -n 's/^#   //p' "$0" >&2
    exit 2
    ;;
esac
