#!/bin/sh
# The image's cross-builds, in one place: the Dockerfile runs this script,
# and `make test-shipped` runs the same script to test what it builds.
#
#   tools/cross.sh triple ARCH        the target triple, glibc included, for amd64 or arm64
#   tools/cross.sh image ARCH DIR     build for ARCH and lay the image's /opt/kf-api out in DIR
#
# Both architectures are built on the build machine with cargo-zigbuild
# (tools/requirements-cross.txt pins it and zig), against glibc 2.34: Amazon
# Linux 2023's, the runtime image's (and Lambda's provided.al2023).
set -eu

triple() {
  case "$1" in
    amd64) echo x86_64-unknown-linux-gnu.2.34 ;;
    arm64) echo aarch64-unknown-linux-gnu.2.34 ;;
    *) echo "unsupported architecture: $1" >&2; exit 1 ;;
  esac
}

case "${1:-}" in
  triple)
    triple "$2"
    ;;
  image)
    target="$(triple "$2")"
    out="$3"
    # Every binary of the workspace but the tests': the gateway and every
    # function crate under functions/ (the template names the same ones, a
    # test keeps them equal).
    cargo zigbuild --release --locked --target "$target" --bins --workspace --exclude e2e
    built="${CARGO_TARGET_DIR:-target}/${target%%.*}/release"
    rm -rf "$out/functions"
    mkdir -p "$out/functions"
    cp "$built/gateway" "$out/gateway"
    cp template.yaml "$out/template.yaml"
    for dir in functions/*/; do
      f="$(basename "$dir")"
      if [ -f "$built/$f" ]; then
        mkdir -p "$out/functions/$f"
        cp "$built/$f" "$out/functions/$f/bootstrap"
      fi
    done
    ;;
  *)
    sed -n 's/^#   //p' "$0" >&2
    exit 2
    ;;
esac
