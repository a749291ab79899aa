# shellcheck shell=bash
# Shared helpers of the dockerd end-to-end tests and scripts/bench-docker: packages, a private
# dockerd per run, the strata plugin, offline images, mount-leak checks. Sourced, not run.
# Callers set W (a fresh work directory) before calling start_* functions.

DOCKERD=/usr/sbin/dockerd
# Debian's CLI (20.10) on purpose: /usr/local/bin may hold a newer one.
DOCKER_CLI=/usr/bin/docker

e2e_repo() { cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd; }

# Installs dockerd 20.10, busybox-static and the tools the tests use, when missing.
e2e_install_packages() {
  local pkgs=(docker.io busybox-static tar coreutils util-linux procps python3 bc) missing=() p
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Builds the strata binary and sets PLUGIN_CMD (an array) and STRATA.
# Uses `strata docker-plugin` when the CLI has it, else the crate's test-only example binary.
e2e_build() {
  local repo target
  repo=$(e2e_repo)
  target=${CARGO_TARGET_DIR:-$repo/target}
  (cd "$repo" && cargo build --release -q -p strata-cli) >&2
  STRATA=$target/release/strata
  if "$STRATA" docker-plugin --help >/dev/null 2>&1; then
    PLUGIN_CMD=("$STRATA" docker-plugin --name)
  else
    echo "note: 'strata docker-plugin' is not available; using the strata-docker example binary" >&2
    (cd "$repo" && cargo build --release -q -p strata-docker --example plugin) >&2
    PLUGIN_CMD=("$target/release/examples/plugin")
  fi
}

D() { DOCKER_HOST="unix://$W/docker.sock" "$DOCKER_CLI" "$@"; }

# shellcheck source=tests/e2e/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

# start_dockerd DRIVER: a private dockerd on $W (data-root $W/root unless DATA_ROOT is set).
DOCKERD_PID=
DOCKERD_EXTRA=()
start_dockerd() {
  local driver=$1 data_root=${DATA_ROOT:-$W/root}
  mkdir -p "$W/exec"
  local args=(--data-root "$data_root" --exec-root "$W/exec" --pidfile "$W/dockerd.pid"
    -H "unix://$W/docker.sock" -s "$driver" --iptables=false --ip6tables=false --bridge=none
    --log-level info)
  [[ $driver == overlay2 ]] || args+=(--experimental)
  args+=("${DOCKERD_EXTRA[@]}")
  "$DOCKERD" "${args[@]}" >>"$W/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  if ! wait_for 90 D version; then
    echo "dockerd did not come up; last log lines:" >&2
    tail -n 20 "$W/dockerd.log" >&2
    return 1
  fi
}

stop_dockerd() {
  pid_alive "$DOCKERD_PID" || return 0
  kill -TERM "$DOCKERD_PID"
  if ! wait_exit "$DOCKERD_PID" 60; then
    echo "dockerd did not stop in 60 s; killing it" >&2
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    wait_exit "$DOCKERD_PID" 10 || true
  fi
  wait "$DOCKERD_PID" 2>/dev/null || true
  DOCKERD_PID=
  # dockerd's own containerd normally exits with it; make sure of this one only.
  local cpid
  cpid=$(cat "$W/exec/containerd/containerd.pid" 2>/dev/null || true)
  if pid_alive "$cpid" && grep -q "$W/exec" "/proc/$cpid/cmdline" 2>/dev/null; then
    kill -TERM "$cpid" 2>/dev/null || true
    wait_exit "$cpid" 20 || kill -KILL "$cpid" 2>/dev/null || true
  fi
}

# start_plugin NAME: the strata plugin on /run/docker/plugins/NAME.sock.
PLUGIN_PID=
start_plugin() {
  local name=$1
  RUST_LOG=${RUST_LOG:-strata_docker=debug,strata=info} "${PLUGIN_CMD[@]}" "$name" >>"$W/plugin.log" 2>&1 &
  PLUGIN_PID=$!
  # Up to a minute: in the emulated guest (scripts/vm-test) on a loaded host, the first start
  # reads the binary over 9p and took more than 20 s once.
  if ! wait_for "${PLUGIN_START_TIMEOUT:-60}" test -S "/run/docker/plugins/$name.sock"; then
    echo "the plugin did not create its socket; log:" >&2
    tail -n 20 "$W/plugin.log" >&2
    return 1
  fi
}

stop_plugin() {
  pid_alive "$PLUGIN_PID" || return 0
  kill -TERM "$PLUGIN_PID"
  wait_exit "$PLUGIN_PID" 40 || kill -KILL "$PLUGIN_PID" 2>/dev/null || true
  wait "$PLUGIN_PID" 2>/dev/null || true
  PLUGIN_PID=
}

# make_busybox_rootfs DIR: a busybox rootfs with a few files the scenarios edit.
make_busybox_rootfs() {
  local r=$1 a
  mkdir -p "$r"/{bin,etc,data,tobedeleted/dir,root,tmp}
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do
    [[ $a == busybox ]] || ln -sf busybox "$r/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\n' >"$r/etc/group"
  printf 'config\n' >"$r/etc/config.txt"
  printf 'old\n' >"$r/data/old.txt"
  printf 'keep\n' >"$r/data/keep.txt"
  printf 'deep\n' >"$r/tobedeleted/dir/file"
}

# import_busybox TAG
import_busybox() {
  rm -rf "$W/rootfs"
  make_busybox_rootfs "$W/rootfs"
  tar --numeric-owner -C "$W/rootfs" -c . | D import - "$1" >/dev/null
}

# A context for a multi-layer image whose later layers delete a file, delete a directory and
# replace a directory with different content.
write_multilayer_context() {
  local ctx=$1 base=$2
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<EOF
FROM $base
RUN mkdir -p /a/sub /b/sub /c/old && echo 1 > /a/file && echo 2 > /a/sub/x && echo 3 > /b/sub/y && echo 4 > /c/old/z && echo keep > /c/keep
RUN rm /a/file
RUN rm -rf /b
RUN rm -rf /c && mkdir -p /c/new && echo 5 > /c/new/w
EOF
}
