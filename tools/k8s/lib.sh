# shellcheck shell=bash
# Helpers shared by tools/k8s/test.sh and tools/k8s/node-test.sh. Both
# define k (their kubectl) and timeout (seconds) before calling these.
say() { printf '\n== %s\n' "$*"; }
pass() { printf '  ok: %s\n' "$*"; }
die() { printf '  FAIL: %s\n' "$*" >&2; exit 1; }
# Polls a command until it succeeds, for $timeout seconds. The command runs
# anew each time: pass a command, not a value computed once.
eventually() { # description command...
  local what=$1 deadline=$((SECONDS + timeout))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what (not within ${timeout}s)"
    sleep 0.5
  done
}
# A namespace that enforces, warns and audits Pod Security "restricted".
restricted_namespace() { # name
  k create namespace "$1" > /dev/null
  k label namespace "$1" > /dev/null \
    pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest \
    pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/warn-version=latest \
    pod-security.kubernetes.io/audit=restricted pod-security.kubernetes.io/audit-version=latest
}
