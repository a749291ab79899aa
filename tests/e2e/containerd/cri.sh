# shellcheck shell=bash
# shellcheck disable=SC2034 # SCENARIO is read by run_case
# The Kubernetes node's path without Kubernetes: containerd 1.7's CRI plugin with
# `snapshotter = "$SNAP"`, driven over runtime.v1 by cri.py; sourced by run.

CRI_PROTO=${STRATA_ENGINES:-/opt/engines}/cri-api/usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto
PAUSE_NAME=docker.io/e2e/pause:1
KC() { "$CTR" --address "$W/c.sock" --namespace k8s.io "$@"; }

cri_case_start() {
  use_containerd 1.7
  start_snapshotter
  SANDBOX_IMAGE=$PAUSE_NAME write_containerd_config cri
  start_containerd
  local line
  line=$(KC plugins ls | awk '$2 == "cri"')
  expect_contains "CRI plugin" ok "$line"
  KC images import --snapshotter "$SNAP" "$PAUSE_TAR" >/dev/null
  KC images import --snapshotter "$SNAP" "$MULTI_TAR" >/dev/null
  expect_eq "committed snapshots of both images" 7 \
    "$(KC snapshots --snapshotter "$SNAP" ls | awk '$NF == "Committed"' | wc -l)"
}

cri_case_pod() {
  local imagefs
  if [[ $SNAP == overlayfs ]]; then
    imagefs=$W/croot/io.containerd.snapshotter.v1.overlayfs
  else
    imagefs=$(snap_root) # the proxy plugin's exports root
  fi
  multi_expected >"$W/cri-expected"
  mkdir -p "$W/pod-logs"
  CRI_IMAGEFS=$imagefs /usr/bin/python3 "$CE2E_DIR/cri.py" "$CRI_PROTO" "$W/c.sock" "$MULTI_NAME" \
    "$W/cri-expected" "$MULTI_SCRIPT" "$W/pod-logs"
  expect_eq "active snapshots left" "" "$(KC snapshots --snapshotter "$SNAP" ls | awk '$NF == "Active" || $NF == "View"')"
  expect_eq "committed snapshots kept" 7 "$(KC snapshots --snapshotter "$SNAP" ls | awk '$NF == "Committed"' | wc -l)"
  expect_eq "mounts left" "" "$(mounts_under "$W")"
  expect_eq "shims left" "" "$(shim_pids)"
}

cri_case_teardown() {
  # The CRI plugin adds references of its own (image id, repo digest): remove every one.
  local refs
  mapfile -t refs < <(KC images ls -q)
  KC images rm --sync "${refs[@]}" >/dev/null
  wait_for 30 sh -c "[ -z \"\$($CTR --address $W/c.sock -n k8s.io snapshots --snapshotter $SNAP ls | awk 'NR > 1')\" ]" || true
  expect_eq "snapshots left after the images were removed" "" "$(KC snapshots --snapshotter "$SNAP" ls | awk 'NR > 1')"
  stop_containerd
  stop_snapshotter
  expect_eq "mounts left" "" "$(mounts_under "$W")"
  if [[ $SNAP == strata ]]; then
    "$STRATA" --home "$(strata_home)" check
  fi
}

cri_scenario() { # SNAP
  SNAP=$1
  SCENARIO="cri-1.7/$SNAP"
  use_containerd 1.7
  new_workdir
  NS=k8s.io
  echo "== CRI (runtime.v1) of containerd 1.7 on $SNAP (work dir $W)"
  run_case start cri_case_start
  [[ -n $(containerd_pid) ]] || return 0
  run_case pod cri_case_pod
  run_case teardown cri_case_teardown
}
