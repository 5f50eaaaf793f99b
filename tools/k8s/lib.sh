# shellcheck shell=bash
# Helpers shared by tools/k8s/test.sh and tools/k8s/node-test.sh. Both
# define k (their kubectl) and timeout (seconds) before calling these.
say() { printf '\n== %s\n' "$*"; }
pass() { printf '  ok: %s\n' "$*"; }
die() { printf '  FAIL: %s\n' "$*" >&2; exit 1; }
# At exit, however the script ends, runs COMMAND (which stops, by pid, what
# the test started), then removes STATE if the test reached ok=1, or says
# where the logs are kept if it did not.
stop_at_exit() { # name state logs command...
  _stop_name=$1 _stop_state=$2 _stop_logs=$3
  shift 3
  _stop_command=("$@")
  ok=0
  trap _stop_now EXIT
}
_stop_now() {
  "${_stop_command[@]}" || true
  if [ "${ok:-0}" = 1 ]; then
    rm -rf "$_stop_state"
  else
    echo "$_stop_name: FAILED; logs in $_stop_logs" >&2
  fi
}
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
