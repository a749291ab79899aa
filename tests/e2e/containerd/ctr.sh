# shellcheck shell=bash
# shellcheck disable=SC2034 # SCENARIO is read by run_case
# The ctr scenario: a private containerd ($CTRD) with the snapshotter $SNAP; sourced by run.

# The committed snapshot no other snapshot names as parent: the top of the (only) image chain.
top_snapshot() {
  CS ls | awk 'NR > 1 && $NF == "Committed" { key[$1] = 1; if (NF == 3) par[$2] = 1 } END { for (k in key) if (!(k in par)) print k }'
}

snapshot_count() { CS ls | awk 'NR > 1' | wc -l; }

# Usage in bytes of KEY (ctr prints a human size; --json is not there in 1.6, so read the table).
usage_bytes() {
  local line
  line=$(CS usage "$1" | awk -v k="$1" '$1 == k')
  local size=${line#* }
  size=$(echo "$size" | awk '{print $1 $2}')
  python3 - "$size" <<'PY'
import re, sys
s = sys.argv[1]
m = re.match(r"^([0-9.]+)\s*([kKMGT]?i?B)?$", s)
if not m:
    sys.exit("cannot read size " + s)
units = {"B": 1, "": 1, "kB": 1e3, "KB": 1e3, "KiB": 1024, "MB": 1e6, "MiB": 1 << 20, "GB": 1e9, "GiB": 1 << 30}
print(int(float(m.group(1)) * units[m.group(2) or ""]))
PY
}

note() { echo "[$(date +%T.%N | cut -c1-12)] $*"; }

ctr_case_start() {
  start_snapshotter
  write_containerd_config
  start_containerd
  local line
  line=$(C plugins ls | awk -v id="$SNAP" '$1 == "io.containerd.snapshotter.v1" && $2 == id')
  expect_contains "snapshotter plugin $SNAP" ok "$line"
}

ctr_case_import() {
  local out top
  C images import --snapshotter "$SNAP" "$MULTI_TAR" >/dev/null
  out=$(C images ls -q)
  expect_eq "images" "$MULTI_NAME" "$out"
  expect_eq "committed snapshots of the 7-layer image" 7 "$(CS ls | awk '$NF == "Committed"' | wc -l)"
  expect_eq "no active snapshots left by the import" 0 "$(CS ls | awk '$NF == "Active"' | wc -l)"
  top=$(top_snapshot)
  expect_eq "one top snapshot" 1 "$(echo "$top" | wc -l)"
  echo "$top" >"$W/top"
  expect_eq "mounts left by the import" "" "$(mounts_under "$W")"
}

ctr_case_run() {
  local out
  out=$(C run --rm --snapshotter "$SNAP" "$MULTI_NAME" "run-$NS" sh -c "$MULTI_SCRIPT")
  expect_eq "tree seen by the container" "$(multi_expected)" "$out"
  expect_eq "snapshots after run --rm" 7 "$(snapshot_count)"
  expect_eq "mounts left after run --rm" "" "$(mounts_under "$W")"
  # A container that writes, then a second one on the same image sees none of it.
  C run --rm --snapshotter "$SNAP" "$MULTI_NAME" "w-$NS" sh -c 'echo x > /etc/config.txt; rm -rf /q /a; touch /new' >/dev/null
  out=$(C run --rm --snapshotter "$SNAP" "$MULTI_NAME" "r2-$NS" sh -c 'cat /etc/config.txt; ls /q; test -e /new || echo no-new')
  expect_eq "a new container sees the image only" "$(printf '%s\n' config d1 d2 d3 d4 h no-new)" "$out"
}

# Mounts KEY's mounts (as ctr prints them) on DIR.
mount_snapshot() { # DIR KEY
  local cmd
  mkdir -p "$1"
  cmd=$(CS mounts "$1" "$2")
  echo "mounting: $cmd"
  bash -c "$cmd"
}

ctr_case_snapshot() {
  local top info usage mnt=$W/mnt
  top=$(cat "$W/top")
  CS prepare e2e-active "$top"
  expect_fail "prepare of an existing key" "already exists" CS prepare e2e-active "$top"
  expect_fail "prepare on a missing parent" "not found" CS prepare e2e-other missing-parent
  info=$(CS info e2e-active)
  expect_contains "info of the active snapshot" '"Kind": "Active"' "$info"
  expect_contains "parent of the active snapshot" "\"Parent\": \"$top\"" "$info"
  mount_snapshot "$mnt" e2e-active
  expect_eq "image content in the active snapshot" "$(printf '%s\n' 5 config)" "$(cat "$mnt/c/new/w" "$mnt/etc/config.txt")"
  head -c 3000000 /dev/urandom >"$mnt/big"
  rm "$mnt/data/old.txt"
  mkdir "$mnt/newdir"
  umount "$mnt"
  usage=$(usage_bytes e2e-active)
  ((usage >= 3000000 && usage < 3500000)) || { echo "usage of the active snapshot: $usage, want ~3 MB"; exit 1; }
  CS commit e2e-committed e2e-active
  expect_fail "the active key is gone after commit" "not found" CS info e2e-active
  info=$(CS info e2e-committed)
  expect_contains "info of the committed snapshot" '"Kind": "Committed"' "$info"
  usage=$(usage_bytes e2e-committed)
  ((usage >= 3000000 && usage < 3500000)) || { echo "usage of the committed snapshot: $usage, want ~3 MB"; exit 1; }
  CS view e2e-view e2e-committed
  # ctr gives a view no gc.root label (a prepare gets one): containerd's garbage collector may
  # take it at any moment, and then leaves the parent's child entry behind, so that the parent
  # can never be removed. Root it at once.
  CS label e2e-view containerd.io/gc.root=e2e >/dev/null
  expect_fail "commit of a view" "" CS commit e2e-nope e2e-view
  mount_snapshot "$mnt" e2e-view
  expect_eq "view content" "$(printf '%s\n' absent 3000000 dir yes)" \
    "$(test -e "$mnt/data/old.txt" && echo present || echo absent; stat -c %s "$mnt/big"; test -d "$mnt/newdir" && echo dir;
    python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.e2e").decode())' "$mnt/x/attr")"
  if touch "$mnt/ro-test" 2>/dev/null; then echo "the view is writable"; exit 1; fi
  umount "$mnt"
  CS label e2e-committed e2e.test/label=yes >/dev/null
  expect_contains "label set" '"e2e.test/label": "yes"' "$(CS info e2e-committed)"
  CS label e2e-committed e2e.test/label= >/dev/null
  info=$(CS info e2e-committed)
  [[ $info != *e2e.test/label* ]] || { echo "label not removed: $info"; exit 1; }
  expect_fail "remove of a snapshot with a child" "" CS rm e2e-committed
  CS rm e2e-view
  CS rm e2e-committed
  expect_fail "removed snapshot" "not found" CS info e2e-committed
  expect_eq "snapshots after rm" 7 "$(snapshot_count)"
  # Removed keys are reusable at once.
  CS prepare e2e-committed "$top"
  CS rm e2e-committed
  expect_eq "mounts left" "" "$(mounts_under "$W")"
}

# A running container, for the restart cases; its state must survive them.
ctr_case_sleeper() {
  C run -d --snapshotter "$SNAP" "$MULTI_NAME" "sleeper-$NS" sh -c 'echo running > /state; sleep 600' >/dev/null
  wait_for 20 C tasks exec --exec-id probe "sleeper-$NS" test -e /state
  CS ls | sort >"$W/snapshots-before"
  expect_contains "active snapshot of the sleeper" "sleeper-$NS" "$(cat "$W/snapshots-before")"
}

ctr_case_restart_containerd() {
  stop_containerd
  start_containerd
  expect_eq "snapshots after containerd restart" "$(cat "$W/snapshots-before")" "$(CS ls | sort)"
  expect_eq "images after restart" "$MULTI_NAME" "$(C images ls -q)"
  expect_eq "running container kept" running "$(C tasks exec --exec-id e1 "sleeper-$NS" cat /state)"
  expect_eq "run after restart" "$(multi_expected)" \
    "$(C run --rm --snapshotter "$SNAP" "$MULTI_NAME" "rr-$NS" sh -c "$MULTI_SCRIPT")"
}

# After a snapshotter restart containerd redials with its gRPC backoff (at most 3 s apart in
# 1.6 and 1.7); wait for that rather than fail on the first call.
await_reconnect() {
  local t0=$SECONDS
  wait_for 30 CS ls || { echo "containerd did not reach the restarted snapshotter in 30 s"; CS ls; exit 1; }
  echo "containerd reached the restarted snapshotter after $((SECONDS - t0)) s"
}

ctr_case_restart_snapshotter() {
  stop_snapshotter # fails unless SIGTERM ends it with status 0
  start_snapshotter
  await_reconnect
  expect_eq "snapshots after snapshotter restart" "$(cat "$W/snapshots-before")" "$(CS ls | sort)"
  expect_eq "running container kept its rootfs" running "$(C tasks exec --exec-id e2 "sleeper-$NS" cat /state)"
  expect_eq "run after the snapshotter restart" "$(multi_expected)" \
    "$(C run --rm --snapshotter "$SNAP" "$MULTI_NAME" "rs-$NS" sh -c "$MULTI_SCRIPT")"
  # kill -9, then a new process: nothing lost either.
  kill9 snapshotter
  start_snapshotter
  await_reconnect
  expect_eq "snapshots after kill -9 and restart" "$(cat "$W/snapshots-before")" "$(CS ls | sort)"
  # The sleeper goes; its active snapshot with it.
  C tasks kill -s KILL "sleeper-$NS"
  wait_for 20 sh -c "! $CTR --address $W/c.sock -n $NS tasks ls | grep -q sleeper-$NS.*RUNNING"
  C tasks rm "sleeper-$NS" >/dev/null 2>&1 || true
  C containers rm "sleeper-$NS"
  expect_eq "snapshots after the sleeper went" 7 "$(snapshot_count)"
  expect_eq "mounts left" "" "$(mounts_under "$W")"
}

ctr_case_kill_import() {
  local pid n rc=0
  # Killed while containerd unpacks a layer, after two of the image's new layers are committed
  # (its busybox layer is the multi image's, already there).
  C images import --snapshotter "$SNAP" "$KILL_TAR" >"$W/kill-import.out" 2>&1 &
  pid=$!
  while :; do
    CS ls >"$W/kill-ls" 2>/dev/null || true
    n=$(awk 'NR > 1 && $NF == "Committed"' "$W/kill-ls" | wc -l)
    if ((n >= 9)) && grep -q '^extract' "$W/kill-ls"; then break; fi
    pid_alive "$pid" || { echo "the import ended before the kill (committed: $n)"; cat "$W/kill-import.out"; exit 1; }
    sleep 0.02
  done
  echo "killing the snapshotter with an unpack in flight: $(CS ls | awk 'NR > 1 {print $NF}' | sort | uniq -c | tr '\n' ' ')"
  kill9 snapshotter
  wait "$pid" || rc=$?
  echo "import exit status after the kill: $rc"; cat "$W/kill-import.out"
  note "import ended; starting the snapshotter again"
  start_snapshotter
  expect_contains "containerd carries on" Version "$(C version)"
  await_reconnect
  if [[ $SNAP == strata ]]; then
    STRATA_HOME=$(strata_home)
    "$STRATA" --home "$STRATA_HOME" check
  fi
  note "checked; importing again"
  # The import succeeds now, and the image runs.
  C images import --snapshotter "$SNAP" "$KILL_TAR" >/dev/null
  expect_eq "run on the image imported after the kill" "$(printf '%s\n' ok)" \
    "$(C run --rm --snapshotter "$SNAP" "$KILL_NAME" "rk-$NS" sh -c 'test -f /usr/lib/blob-4 && echo ok')"
  note "imported and ran; removing the image"
  C images rm --sync "$KILL_NAME" >/dev/null
  wait_for 30 sh -c "[ \$($CTR --address $W/c.sock -n $NS snapshots --snapshotter $SNAP ls | awk 'NR > 1' | wc -l) -le 7 ]" || true
  note "removed"
  expect_eq "snapshots after removing the image" 7 "$(snapshot_count)"
  if [[ $SNAP == strata ]]; then
    "$STRATA" --home "$STRATA_HOME" check
  fi
}

ctr_case_gc() {
  local k
  # Leftovers of a failed snapshot case (they carry gc.root labels) would hold the chain.
  for k in e2e-view e2e-committed e2e-active; do CS rm "$k" >/dev/null 2>&1 || true; done
  C images rm --sync "$MULTI_NAME" >/dev/null
  wait_for 30 sh -c "[ \$($CTR --address $W/c.sock -n $NS snapshots --snapshotter $SNAP ls | awk 'NR > 1' | wc -l) -eq 0 ]" || true
  expect_eq "snapshots left after the image was deleted" "" "$(CS ls | awk 'NR > 1')"
  if [[ $SNAP == strata ]]; then
    local home
    home=$(strata_home)
    expect_eq "strata layers left" "" "$("$STRATA" --home "$home" ls)"
    "$STRATA" --home "$home" check
  fi
}

ctr_case_teardown() {
  local t
  # Containers left by a failed case are stopped first (that case has failed already).
  for t in $(C tasks ls -q 2>/dev/null); do
    echo "stopping leftover task $t"
    C tasks kill -s KILL "$t" || true
    wait_for 20 sh -c "! $CTR --address $W/c.sock -n $NS tasks ls | grep -q '^$t .*RUNNING'" || true
    C tasks rm -f "$t" || true
  done
  for t in $(C containers ls -q 2>/dev/null); do C containers rm "$t" || true; done
  stop_containerd
  stop_snapshotter # fails unless SIGTERM ends it with status 0
  expect_eq "shims left" "" "$(shim_pids)"
  expect_eq "mounts left" "" "$(mounts_under "$W")"
  [[ $SNAP == overlayfs ]] || expect_eq "socket removed" absent "$(test -e "$(snap_sock)" && echo present || echo absent)"
}

ctr_scenario() { # CTRD SNAP
  use_containerd "$1"
  SNAP=$2
  SCENARIO="ctr-$CTRD/$SNAP"
  new_workdir
  NS=e2e-$$-${CTRD/./}
  echo "== ctr on containerd $CTRD ($("$CONTAINERD" --version | awk '{print $3}')), snapshotter $SNAP (work dir $W)"
  run_case start ctr_case_start
  [[ $FAILED -eq 0 || -n $(containerd_pid) ]] || return 0
  run_case import ctr_case_import
  run_case run ctr_case_run
  run_case snapshot ctr_case_snapshot
  run_case sleeper ctr_case_sleeper
  run_case restart-containerd ctr_case_restart_containerd
  if [[ $SNAP == overlayfs ]]; then
    skip_case restart-snapshotter "built into containerd"
    C tasks kill -s KILL "sleeper-$NS" >/dev/null 2>&1 || true
    wait_for 20 sh -c "! $CTR --address $W/c.sock -n $NS tasks ls | grep -q sleeper-$NS.*RUNNING" || true
    C tasks rm "sleeper-$NS" >/dev/null 2>&1 || true
    C containers rm "sleeper-$NS" >/dev/null 2>&1 || true
    skip_case kill-9-during-import "built into containerd"
  else
    run_case restart-snapshotter ctr_case_restart_snapshotter
    run_case kill-9-during-import ctr_case_kill_import
  fi
  run_case gc ctr_case_gc
  run_case teardown ctr_case_teardown
}
