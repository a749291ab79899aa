# shellcheck shell=bash
# Polling and mount helpers shared by the dockerd and containerd end-to-end libraries
# (tests/e2e/docker/lib.sh, tests/e2e/containerd/lib.sh). Sourced, not run.

# Mount points at or below $1, one per line.
mounts_under() {
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo
}

wait_for() { # SECONDS COMMAND...: polls until COMMAND succeeds
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

wait_exit() { # PID SECONDS: polls until PID has exited
  local deadline=$((SECONDS + $2))
  while pid_alive "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}
