# shellcheck shell=bash
# shellcheck disable=SC2034 # SCENARIO is read by run_case
# The Docker scenario: dockerd 26 (Debian 13) with the containerd image store on a private
# containerd 1.7 whose snapshotter is $SNAP; sourced by run. The same steps as the graphdriver
# end-to-end test (tests/e2e/docker/run): load, run, diff, commit, build, save, restart, rmi.

D() { DOCKER_HOST="unix://$W/docker.sock" "$DOCKER26" "$@"; }
# The snapshots dockerd keeps in containerd (namespace moby).
DS() { "$CTR" --address "$W/c.sock" --namespace moby snapshots --snapshotter "$SNAP" "$@"; }

start_dockerd() {
  mkdir -p "$W/droot" "$W/dexec"
  printf '{"features": {"containerd-snapshotter": true}, "storage-driver": "%s"}\n' "$SNAP" >"$W/daemon.json"
  spawn dockerd "$W/dockerd.log" env PATH="$SHIM_DIR:$(dirname "$DOCKERD26"):$PATH" "$DOCKERD26" \
    --config-file "$W/daemon.json" --containerd "$W/c.sock" --data-root "$W/droot" --exec-root "$W/dexec" \
    --pidfile "$W/dockerd.pidfile" -H "unix://$W/docker.sock" --iptables=false --ip6tables=false \
    --bridge=none --log-level info
  if ! wait_for 90 D version; then
    echo "dockerd did not come up; last log lines:" >&2
    tail -n 20 "$W/dockerd.log" >&2
    return 1
  fi
}

stop_dockerd() { stop dockerd 60; }

dk_case_start() {
  use_containerd 1.7
  start_snapshotter
  write_containerd_config
  start_containerd
  start_dockerd
  expect_eq "docker info .Driver" "$SNAP" "$(D info --format '{{.Driver}}')"
  expect_contains "driver status" "io.containerd.snapshotter.v1" "$(D info --format '{{json .DriverStatus}}')"
}

dk_case_load() {
  D load -q -i "$MULTI_TAR" >/dev/null
  expect_eq "loaded image layers" 7 "$(D image inspect --format '{{len .RootFS.Layers}}' "$MULTI_NAME")"
  expect_eq "committed snapshots in containerd" 7 "$(DS ls | awk '$NF == "Committed"' | wc -l)"
}

dk_case_run() {
  expect_eq "tree seen by the container" "$(multi_expected)" \
    "$(D run --rm --network none "$MULTI_NAME" sh -c "$MULTI_SCRIPT")"
  # dockerd bind-mounts its data root on itself while it runs.
  expect_eq "mounts left after run --rm" "" "$(mounts_under "$W" | grep -vx "$W/droot" || true)"
}

DK_DIFF=$(printf '%s\n' 'A /new.txt' 'A /newdir' 'A /newdir/f' 'C /data' 'C /etc' 'C /etc/config.txt' \
  'D /data/old.txt' 'D /tobedeleted' 'C /q' 'D /q/d2')

dk_case_diff() {
  D create --network none --name c1 "$MULTI_NAME" sh -c \
    'echo edited >> /etc/config.txt && rm /data/old.txt && echo new > /new.txt && rm -rf /tobedeleted /q/d2 && mkdir /newdir && echo f > /newdir/f' >/dev/null
  D start -a c1
  expect_eq "exit code" 0 "$(D inspect --format '{{.State.ExitCode}}' c1)"
  expect_eq "docker diff" "$(sort <<<"$DK_DIFF")" "$(D diff c1 | sort)"
}

dk_case_commit() {
  D commit c1 e2e/committed:1 >/dev/null
  expect_eq "committed image layers" 8 "$(D image inspect --format '{{len .RootFS.Layers}}' e2e/committed:1)"
  expect_eq "container of the committed image" "$(printf '%s\n' config edited new f keep.txt gone gone d1 d3 d4 h)" \
    "$(D run --rm --network none e2e/committed:1 sh -c \
      'cat /etc/config.txt /new.txt /newdir/f; ls /data; test -e /tobedeleted || echo gone; test -e /q/d2 || echo gone; ls /q')"
}

dk_case_build() {
  mkdir -p "$W/ctx"
  printf 'hello from the context\n' >"$W/ctx/hello.txt"
  cat >"$W/ctx/Dockerfile" <<EOF
FROM $MULTI_NAME
RUN echo built > /built.txt && rm /data/old.txt && rm -rf /c
COPY hello.txt /hello.txt
RUN mkdir -p /c && echo back > /c/again
EOF
  DOCKER_BUILDKIT=0 D build -q --network none -t e2e/built:1 "$W/ctx" >"$W/build.log" 2>&1 ||
    { tail -n 30 "$W/build.log"; exit 1; }
  expect_eq "built image" "$(printf '%s\n' built 'hello from the context' keep.txt again)" \
    "$(D run --rm --network none e2e/built:1 sh -c 'cat /built.txt /hello.txt; ls /data; ls /c')"
}

dk_fingerprint() {
  D image inspect --format '{{.Id}} {{json .RootFS.Layers}}' "$1"
  D run --rm --network none "$1" sh -c 'find / -xdev -path /proc -prune -o -path /sys -prune -o -path /dev -prune -o -type f -print | grep -v "^/etc/host\|^/etc/resolv\|^/.dockerenv" | sort | xargs md5sum; ls -lR /a /c /q'
}

dk_case_save() {
  local before after
  before=$(dk_fingerprint e2e/built:1)
  D save -o "$W/built.tar" e2e/built:1
  D rmi e2e/built:1 >/dev/null
  if D image inspect e2e/built:1 >/dev/null 2>&1; then echo "image still present after rmi"; exit 1; fi
  D load -q -i "$W/built.tar" >/dev/null
  after=$(dk_fingerprint e2e/built:1)
  expect_eq "image id, diff ids and content after save/rmi/load" "$before" "$after"
  rm -f "$W/built.tar"
}

dk_case_restart() {
  stop_dockerd
  expect_eq "mounts left after dockerd stopped" "" "$(mounts_under "$W")"
  start_dockerd
  expect_eq "images after restart" "$(printf '%s\n' e2e/built:1 e2e/committed:1 e2e/multi:1)" \
    "$(D images --format '{{.Repository}}:{{.Tag}}' | sort)"
  expect_eq "container layer kept" "$(sort <<<"$DK_DIFF")" "$(D diff c1 | sort)"
  expect_eq "run after restart" "$(multi_expected)" "$(D run --rm --network none "$MULTI_NAME" sh -c "$MULTI_SCRIPT")"
}

dk_case_rmi() {
  local ids
  mapfile -t ids < <(D ps -aq)
  [[ ${#ids[@]} -eq 0 ]] || D rm -f "${ids[@]}" >/dev/null
  D image prune -af >/dev/null
  D builder prune -af >/dev/null
  mapfile -t ids < <(D images -aq | sort -u)
  [[ ${#ids[@]} -eq 0 ]] || D rmi -f "${ids[@]}" >/dev/null
  expect_eq "images left" "" "$(D images -aq)"
  # dockerd leaves the garbage collection to containerd; it runs after the deletions.
  wait_for 30 sh -c "[ -z \"\$($CTR --address $W/c.sock -n moby snapshots --snapshotter $SNAP ls | awk 'NR > 1')\" ]" || true
  expect_eq "snapshots left in containerd" "" "$(DS ls | awk 'NR > 1')"
  if [[ $SNAP == strata ]]; then
    expect_eq "strata layers left" "" "$("$STRATA" --home "$(strata_home)" ls)"
    "$STRATA" --home "$(strata_home)" check
  fi
}

dk_case_teardown() {
  stop_dockerd
  stop_containerd
  stop_snapshotter
  expect_eq "shims left" "" "$(shim_pids)"
  expect_eq "mounts left" "" "$(mounts_under "$W")"
}

docker_scenario() { # SNAP
  SNAP=$1
  SCENARIO="docker-26/$SNAP"
  use_containerd 1.7
  new_workdir
  NS=moby
  echo "== dockerd $("$DOCKERD26" --version | awk '{print $3}' | tr -d ,) with the containerd image store on $SNAP, containerd 1.7 (work dir $W)"
  run_case start dk_case_start
  [[ -n $(cat "$W/dockerd.pid" 2>/dev/null) ]] || return 0
  run_case load dk_case_load
  run_case run dk_case_run
  run_case diff dk_case_diff
  run_case commit dk_case_commit
  run_case build dk_case_build
  run_case save-load dk_case_save
  run_case restart-dockerd dk_case_restart
  run_case rmi dk_case_rmi
  run_case teardown dk_case_teardown
}
