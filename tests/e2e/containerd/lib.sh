# shellcheck shell=bash
# Variables are set here for the scripts that source this file, and come from scripts/engines.
# shellcheck disable=SC2034,SC2153
# Shared helpers of the containerd end-to-end tests and scripts/bench-containerd: private
# containerd daemons (own root, state, socket and config with a proxy_plugins entry), the
# snapshotter under test, offline images, leak checks and a cleanup that stops everything it
# started (by pid) and unmounts what is left. Sourced, not run.
#
# Callers set W (a fresh work directory) and CTRD (1.6 or 1.7) before start_* functions, and
# SNAP to the snapshotter under test:
#   strata           `strata containerd-snapshotter` as a proxy plugin named strata
#   overlayfs        containerd's built-in overlayfs snapshotter (validates a scenario)
#   overlayfs-proxy  containerd's overlayfs served by the conformance suite binary as a proxy
#                    plugin named overlayfs-proxy (validates the proxy plugin path: restarts, kills)

CE2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CE2E_REPO=$(cd "$CE2E_DIR/../../.." && pwd)
CE2E_CACHE=${STRATA_E2E_CACHE:-/var/tmp/strata-e2e-cache}
NS=e2e

# CONTAINERD16, CTR16, SHIM16_DIR, CONTAINERD17, CTR17, SHIM17_DIR, DOCKERD26, DOCKER26
# shellcheck source=/dev/null
source <("$CE2E_REPO/scripts/engines" --print)

# Paths of the engine of the given containerd version: sets CONTAINERD, CTR, SHIM_DIR.
use_containerd() {
  case $1 in
    1.6) CONTAINERD=$CONTAINERD16 CTR=$CTR16 SHIM_DIR=$SHIM16_DIR ;;
    1.7) CONTAINERD=$CONTAINERD17 CTR=$CTR17 SHIM_DIR=$SHIM17_DIR ;;
    *) echo "unknown containerd version $1" >&2; return 2 ;;
  esac
  CTRD=$1
}

# Builds the strata binary (release) and sets STRATA.
build_strata() {
  local target=${CARGO_TARGET_DIR:-$CE2E_REPO/target}
  (cd "$CE2E_REPO" && cargo build --release -q -p strata-cli) >&2
  STRATA=$target/release/strata
  if ! "$STRATA" containerd-snapshotter --help >/dev/null 2>&1; then
    echo "this strata has no 'containerd-snapshotter' command" >&2
    return 1
  fi
}

# The conformance suite binary doubles as containerd's overlayfs served as a proxy plugin.
suite_binary() {
  STRATA=${STRATA:-/bin/true} "$CE2E_DIR/conformance/run" --snapshotter overlayfs -- -test.run '^$' >/dev/null
  SUITE_BIN=$CE2E_CACHE/go/containerd-snapshot-suite.test
}

# snapbench (a Go client timing snapshotter calls through containerd), built offline like the suite.
build_snapbench() {
  SNAPBENCH=$CE2E_CACHE/go/snapbench
  if [[ ! -x $SNAPBENCH ]] || [[ -n $(find "$CE2E_DIR/conformance/src" -newer "$SNAPBENCH" -name '*.go' -print -quit) ]]; then
    mkdir -p "$CE2E_CACHE/go"
    (cd "$CE2E_CACHE/go" && GO111MODULE=off GOFLAGS='' GOPROXY=off GOTOOLCHAIN=local \
      GOPATH="$CE2E_DIR/conformance:/usr/share/gocode" GOCACHE="$CE2E_CACHE/go/cache" \
      go build -o "$SNAPBENCH.new" strata.dev/snapbench)
    mv "$SNAPBENCH.new" "$SNAPBENCH"
  fi
}

# Offline images, cached across runs (rebuilt when image.py changes).
image_archive() { # KIND NAME [ARGS...] -> prints the path of the archive
  local kind=$1 name=$2 key out
  shift 2
  key=$(printf '%s %s %s ' "$kind" "$name" "$*" | cat - "$CE2E_DIR/image.py" /bin/busybox | sha256sum | cut -c1-16)
  out=$CE2E_CACHE/images/$kind-$key.tar
  if [[ ! -s $out ]]; then
    mkdir -p "$CE2E_CACHE/images"
    python3 "$CE2E_DIR/image.py" "$kind" "$out" "$name" "$@"
  fi
  echo "$out"
}

C() { "$CTR" --address "$W/c.sock" --namespace "$NS" "$@"; }
# ctr on the snapshotter under test.
CS() { C snapshots --snapshotter "$SNAP" "$@"; }

# shellcheck source=tests/e2e/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

# spawn NAME LOG COMMAND...: starts COMMAND in the background, output appended to LOG. Its pid
# goes to $W/NAME.pid and, once it exits, its exit status to $W/NAME.rc — through a small
# watcher, so that a later case (another subshell, not its parent) can still learn how it ended.
spawn() {
  local name=$1 log=$2
  shift 2
  rm -f "$W/$name.pid" "$W/$name.rc"
  (
    "$@" >>"$log" 2>&1 &
    echo $! >"$W/$name.pid.new"
    mv "$W/$name.pid.new" "$W/$name.pid"
    st=0
    wait $! || st=$?
    echo "$st" >"$W/$name.rc"
  ) &
  wait_for 10 test -s "$W/$name.pid"
}

# stop NAME SECONDS: SIGTERM to the process spawned as NAME (SIGKILL after SECONDS); returns its
# exit status (non-zero when it did not stop by itself or exited badly).
stop() {
  local name=$1 pid rc
  pid=$(cat "$W/$name.pid" 2>/dev/null || true)
  [[ -n $pid ]] || return 0
  rm -f "$W/$name.pid"
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_exit "$pid" "${2:-30}"; then
      echo "$name ($pid) did not stop in ${2:-30} s after SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      wait_exit "$pid" 10 || true
    fi
  fi
  wait_for 10 test -s "$W/$name.rc" || { echo "$name ($pid): no exit status" >&2; return 1; }
  rc=$(cat "$W/$name.rc")
  [[ $rc -eq 0 ]] || echo "$name ($pid) exited with status $rc after SIGTERM" >&2
  return "$rc"
}

# kill9 NAME: SIGKILL, waits for the exit.
kill9() {
  local pid
  pid=$(cat "$W/$1.pid")
  rm -f "$W/$1.pid"
  kill -KILL "$pid"
  wait_exit "$pid" 10
}

# Snapshotter root and socket of the current work dir.
SNAP_ROOT_REL=snap
snap_root() { echo "$W/$SNAP_ROOT_REL"; }
snap_sock() { echo "$W/snap.sock"; }

# strata's home: the snapshotter root is one (layers, l/, .strata/ with the metadata store).
strata_home() { snap_root; }

# start_snapshotter: the proxy snapshotter of $SNAP on $(snap_sock); a no-op for built-in ones.
start_snapshotter() {
  local root sock
  root=$(snap_root)
  sock=$(snap_sock)
  mkdir -p "$root"
  case $SNAP in
    strata)
      spawn snapshotter "$W/snapshotter.log" env RUST_LOG="${RUST_LOG:-info}" \
        "$STRATA" containerd-snapshotter --root "$root" --socket "$sock"
      ;;
    overlayfs-proxy)
      spawn snapshotter "$W/snapshotter.log" env SUITE_SERVE_OVERLAYFS="$root:$sock" "$SUITE_BIN"
      ;;
    *) return 0 ;;
  esac
  # Serving, not merely a socket file: one left by a killed predecessor refuses connections.
  if ! wait_for 20 sock_accepts "$sock"; then
    echo "the snapshotter does not accept connections on $sock; log:" >&2
    tail -n 20 "$W/snapshotter.log" >&2
    return 1
  fi
}

sock_accepts() { # PATH: a unix socket that accepts a connection
  python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$1" 2>/dev/null
}

snapshotter_pid() { cat "$W/snapshotter.pid" 2>/dev/null || true; }

# stop_snapshotter: SIGTERM; fails when it does not exit 0.
stop_snapshotter() { stop snapshotter 30; }

# write_containerd_config [cri]: config (version 2) for a private containerd on $W.
# shellcheck disable=SC2120 # called with cri by the CRI scenario
write_containerd_config() {
  local cri=${1:-} sandbox=${SANDBOX_IMAGE:-docker.io/e2e/multi:1}
  mkdir -p "$W/croot" "$W/cstate"
  {
    echo "version = 2"
    echo "root = \"$W/croot\""
    echo "state = \"$W/cstate\""
    if [[ $cri == cri ]]; then
      echo 'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]'
    else
      echo 'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]'
    fi
    echo "[grpc]"
    echo "  address = \"$W/c.sock\""
    echo "[ttrpc]"
    echo "  address = \"$W/c.sock.ttrpc\""
    echo "[debug]"
    echo "  address = \"$W/c-debug.sock\""
    echo "  level = \"info\""
    echo "[metrics]"
    echo "  address = \"\""
    case $SNAP in
      strata | overlayfs-proxy)
        echo "[proxy_plugins]"
        echo "  [proxy_plugins.$SNAP]"
        echo "    type = \"snapshot\""
        echo "    address = \"$(snap_sock)\""
        # containerd 1.7 reports the image filesystem (CRI ImageFsInfo) of this directory.
        [[ $CTRD == 1.6 ]] || echo "    exports = { root = \"$(snap_root)\" }"
        ;;
    esac
    if [[ $cri == cri ]]; then
      cat <<EOF
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox"
  disable_cgroup = false
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  stats_collect_period = 2
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$SNAP"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$W/cni/bin"
    conf_dir = "$W/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
EOF
    fi
  } >"$W/containerd.toml"
}

# start_containerd: a private containerd of version $CTRD on $W with the config written before.
start_containerd() {
  # shellcheck disable=SC2119
  [[ -s $W/containerd.toml ]] || write_containerd_config
  spawn containerd "$W/containerd.log" env PATH="$SHIM_DIR:$PATH" "$CONTAINERD" --config "$W/containerd.toml"
  if ! wait_for 60 "$CTR" --address "$W/c.sock" version; then
    echo "containerd did not come up; last log lines:" >&2
    tail -n 20 "$W/containerd.log" >&2
    return 1
  fi
}

containerd_pid() { cat "$W/containerd.pid" 2>/dev/null || true; }

stop_containerd() { stop containerd 60; }

# Shims (and their containers) of this work dir's containerd: found by the socket they were
# started with, stopped by pid.
shim_pids() {
  local p
  for p in $(pgrep -f containerd-shim 2>/dev/null || true); do
    if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$W/c.sock"; then echo "$p"; fi
  done
}

# Stops everything started on $W and unmounts what is left; prints what it had to clean.
teardown_workdir() {
  local p m
  stop dockerd 60 || true
  stop_containerd || true
  for p in $(shim_pids); do
    echo "cleanup: killing shim $p of $W" >&2
    kill -KILL "$p" 2>/dev/null || true
  done
  stop_snapshotter || true
  for m in $(mounts_under "$W" | sort -r); do
    echo "cleanup: unmounting $m" >&2
    umount -l "$m" 2>/dev/null || true
  done
}

# The multi image's tree as a container sees it; run in the container by MULTI_SCRIPT (the files
# engines bind or create in /etc are left out).
MULTI_NAME=docker.io/e2e/multi:1
# shellcheck disable=SC2016 # expanded by the container's shell
MULTI_SCRIPT='cd / && find a c q own x link suid data tobedeleted etc 2>&1 | grep -v -e "^etc/host" -e "^etc/resolv" -e "^etc/mtab" | sort;
test -e /b && echo has-b || echo no-b;
cat a/sub/x c/new/w q/d1/kept q/d2/new q/d3/new q/d4/again q/h/link data/keep.txt link;
stat -c "%n %a %u:%g" own tmp; stat -c "%n %a %u:%g %h" own/file suid q/h/file;
test "$(stat -c %i q/h/file)" = "$(stat -c %i q/h/link)" && echo same-inode;
echo whiteouts: $(find / -xdev -name ".wh.*" | wc -l);
echo applets: $(ls /bin | wc -l)'
multi_expected() {
  local applets
  applets=$(/bin/busybox --list | sort -u | wc -l)
  printf '%s\n' a a/sub a/sub/x c c/new c/new/w data data/keep.txt data/old.txt etc etc/config.txt \
    etc/group etc/passwd link own own/file q q/d1 q/d1/kept q/d2 q/d2/new q/d3 q/d3/new q/d4 \
    q/d4/again q/h q/h/file q/h/link q/h/orig suid tobedeleted tobedeleted/dir tobedeleted/dir/file \
    x x/attr | sort
  printf '%s\n' no-b 2 5 kept new2 new3 again linked keep keep \
    'own 750 1000:1000' 'tmp 1777 0:0' 'own/file 600 1000:1000 1' 'suid 4755 0:0 1' \
    'q/h/file 644 0:0 2' same-inode 'whiteouts: 0' "applets: $applets"
}

# ---------------------------------------------------------------------------------------------
# Cases: run_case NAME FUNCTION runs FUNCTION in a subshell with errexit; its output goes to a
# log shown when it fails. State that outlives a case lives in files under $W.

PASSED=0
FAILED=0
FAILURES=()

run_case() {
  local name=$1 fn=$2 start=$SECONDS rc log
  log="$W/case-$name.log"
  set +e
  (set -e; "$fn") >"$log" 2>&1
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    PASSED=$((PASSED + 1))
    printf 'ok   %-44s %3ds\n' "$SCENARIO/$name" $((SECONDS - start))
  else
    FAILED=$((FAILED + 1))
    FAILURES+=("$SCENARIO/$name")
    printf 'FAIL %-44s %3ds\n' "$SCENARIO/$name" $((SECONDS - start))
    sed 's/^/     | /' "$log" | tail -n 40
  fi
}

# skip_case NAME WHY: a case that does not apply to this snapshotter.
skip_case() { printf 'n/a  %-44s (%s)\n' "$SCENARIO/$1" "$2"; }

expect_eq() { # WHAT EXPECTED ACTUAL
  if [[ "$2" != "$3" ]]; then
    echo "$1: expected:"
    printf '%s\n' "$2" | sed 's/^/    /'
    echo "$1: got:"
    printf '%s\n' "$3" | sed 's/^/    /'
    diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") || true
    exit 1
  fi
}

expect_contains() { # WHAT NEEDLE HAYSTACK
  if [[ "$3" != *"$2"* ]]; then
    echo "$1: expected to contain '$2', got:"
    printf '%s\n' "$3" | sed 's/^/    /'
    exit 1
  fi
}

expect_fail() { # WHAT NEEDLE COMMAND...: COMMAND must fail with NEEDLE in its output
  local what=$1 needle=$2 out
  shift 2
  if out=$("$@" 2>&1); then
    echo "$what: succeeded but should have failed: $out"
    exit 1
  fi
  expect_contains "$what" "$needle" "$out"
}

WORKDIRS=()
new_workdir() {
  W=$(mktemp -d /var/tmp/strata-ctrd.XXXXXX)
  WORKDIRS+=("$W")
}

# Cleanup of every work dir of this run; for `trap ... EXIT`.
cleanup_workdirs() {
  local w
  for w in "${WORKDIRS[@]}"; do
    W=$w
    teardown_workdir 2>&1 | sed "s|^|cleanup $w: |" >&2
    if [[ -n $(mounts_under "$w") ]]; then
      echo "left $w: still mounted" >&2
    elif [[ -n ${E2E_KEEP:-} ]]; then
      echo "kept $w (E2E_KEEP)" >&2
    else
      rm -rf "$w"
    fi
  done
}
