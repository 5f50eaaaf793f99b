#!/bin/sh
# The image's builds and its layout, in one place: the Dockerfile runs this
# script (so `make test-shipped`, which tests the image's binaries, tests what
# it builds), and `make stage` lays a native build out the same way.
#
#   tools/cross.sh triple ARCH        the target triple, glibc included, for amd64 or arm64
#   tools/cross.sh image ARCH DIR     build for ARCH and lay the image's /opt/kf-api out in DIR
#   tools/cross.sh stage DIR          build for this machine (cargo build --release) and lay it out in DIR
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

# The image's /opt/kf-api in $2, from the release binaries in $1: the gateway,
# the template, and every function crate under functions/ (the template names
# the same ones, a test keeps them equal) as functions/<name>/bootstrap, with
# the crate's extensions/ directory beside it when it has one.
layout() {
  built="$1"
  out="$2"
  rm -rf "$out/functions"
  mkdir -p "$out/functions"
  cp "$built/gateway" "$out/gateway"
  cp template.yaml "$out/template.yaml"
  for dir in functions/*/; do
    f="$(basename "$dir")"
    if [ -f "$built/$f" ]; then
      mkdir -p "$out/functions/$f"
      cp "$built/$f" "$out/functions/$f/bootstrap"
      # Its Lambda extensions, if the crate carries any (docs/extensions.md).
      if [ -d "functions/$f/extensions" ]; then
        cp -R "functions/$f/extensions" "$out/functions/$f/extensions"
      fi
    fi
  done
}

# Every binary of the workspace but the tests'.
BINS="--release --locked --bins --workspace --exclude e2e"

case "${1:-}" in
  triple)
    triple "$2"
    ;;
  image)
    target="$(triple "$2")"
    # shellcheck disable=SC2086
    cargo zigbuild $BINS --target "$target"
    layout "${CARGO_TARGET_DIR:-target}/${target%%.*}/release" "$3"
    ;;
  stage)
    # shellcheck disable=SC2086
    cargo build $BINS
    layout "${CARGO_TARGET_DIR:-target}/release" "$2"
    ;;
  *)
    sed -n 's/^#   //p' "$0" >&2
    exit 2
    ;;
esac
