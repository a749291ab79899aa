//! kill -9 of the server process while Prepare, Commit and Remove run, then a restart: no
//! snapshot the client saw committed is lost, no half snapshot is visible, every listed
//! snapshot's layer is whole, and after Cleanup the home holds exactly the listed snapshots'
//! layers and `check` finds nothing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_testkit::{require_root, TempHome};
use tonic::Code;

use crate::common::{Client, ServerProcess};

/// What the client saw succeed.
#[derive(Default)]
struct Seen {
    /// Calls that succeeded.
    ops: usize,
    committed: BTreeSet<String>,
    removed: BTreeSet<String>,
}

/// Runs Prepare → write → Commit → (every other) Remove until the server dies.
fn workload(
    socket: std::path::PathBuf,
    round: usize,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut c) = Client::connect(&socket) else {
        return;
    };
    let mut parent = String::new();
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let key = format!("r{round}/active-{i}");
        let name = format!("r{round}/layer-{i}");
        let Ok(m) = c.prepare(&key, &parent) else {
            return;
        };
        // Write into the upper as containerd's applier would (the upper is the mount's
        // upperdir, or the bind source for a base layer).
        let upper = m[0]
            .options
            .iter()
            .find_map(|o| o.strip_prefix("upperdir="))
            .map_or_else(|| m[0].source.clone(), str::to_owned);
        for f in 0..20 {
            let _ = std::fs::write(format!("{upper}/f-{i}-{f}"), vec![b'x'; 4096]);
        }
        if c.commit(&name, &key).is_err() {
            return;
        }
        {
            let mut s = seen.lock().unwrap();
            s.ops += 1;
            s.committed.insert(name.clone());
        }
        if i % 2 == 1 {
            // Remove the one just committed (a leaf), keep the chain below. While the call
            // runs either outcome is right, so the name leaves `committed` first.
            seen.lock().unwrap().committed.remove(&name);
            if c.remove(&name).is_err() {
                return;
            }
            let mut s = seen.lock().unwrap();
            s.ops += 1;
            s.removed.insert(name);
        } else {
            parent = name;
        }
    }
}

#[test]
fn crash_kill9_during_prepare_commit_remove_loses_nothing_committed() {
    if !require_root("crash_kill9_during_prepare_commit_remove_loses_nothing_committed") {
        return;
    }
    let home = TempHome::new();
    let socket = home.outside().join("ctrd.sock");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let rounds = 12;
    let mut interrupted = 0;
    for round in 0..rounds {
        let mut server = ServerProcess::start(home.home(), &socket);
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (socket, seen, stop) = (socket.clone(), Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || workload(socket, round, seen, stop))
        };
        // Kill once the workload has made progress this round (however slow the machine),
        // after a jitter that differs per round, so the kill lands at different points.
        let target = seen.lock().unwrap().ops + 1 + round % 3;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while seen.lock().unwrap().ops < target && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis((round as u64 * 7) % 23));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap();

        // What the kill left, read with the server down.
        {
            let meta = strata_containerd::meta::Meta::open(home.home()).unwrap();
            let open = meta
                .journal()
                .unwrap()
                .into_iter()
                .filter(|(_, j)| !matches!(j, strata_containerd::meta::Journal::Live { .. }))
                .count();
            let staging = std::fs::read_dir(home.home().join(".strata/staging"))
                .unwrap()
                .count();
            if open + staging > 0 {
                interrupted += 1;
            }
            eprintln!(
                "round {round}: {open} unsettled journal entries, {staging} staging leftovers"
            );
        }
        // Restart and look.
        let _server = ServerProcess::start(home.home(), &socket);
        let mut c = Client::connect(&socket).unwrap();
        let listed: BTreeSet<String> = c.names(&[]).into_iter().collect();
        let s = seen.lock().unwrap();
        for name in &s.committed {
            assert!(
                listed.contains(name),
                "round {round}: committed {name} was lost"
            );
        }
        for name in &s.removed {
            assert!(
                !listed.contains(name),
                "round {round}: removed {name} is back"
            );
        }
        // Whatever is listed is whole: its layer exists and its mounts can be described
        // (active ones) or it can be viewed (committed ones).
        for name in &listed {
            let info = c.stat(name).unwrap();
            if info.kind == strata_containerd::proto::snapshots::Kind::Committed as i32 {
                let v = format!("{name}/check-view");
                c.view(&v, name).unwrap();
                c.remove(&v).unwrap();
            } else {
                c.mounts(name).unwrap();
            }
        }
        drop(s);
        c.cleanup().unwrap();
        // The home holds exactly the listed snapshots' layers.
        let report = home.driver.check(false).unwrap();
        assert!(report.is_clean(), "round {round}: {:?}", report.problems);
        let layers = home.driver.list().unwrap().len();
        assert_eq!(
            layers,
            listed.len(),
            "round {round}: stray layers after Cleanup"
        );
        // Actives left by the killed round are removed as containerd's GC would.
        for name in listed.iter().filter(|n| n.contains("/active-")) {
            match c.remove(name) {
                Ok(()) => {}
                Err(e) => assert_eq!(e.code(), Code::NotFound, "{e:?}"),
            }
        }
    }
    eprintln!("{interrupted} of {rounds} kills interrupted an operation");
    let s = seen.lock().unwrap();
    assert!(
        s.ops >= 2 * rounds,
        "the workload hardly ran: {} calls succeeded in {rounds} rounds",
        s.ops
    );
}

/// The server dies (abort, like kill -9) at each point between a metadata commit and the
/// filesystem change after it; the journal shows the interrupted operation, and a restart
/// settles it: nothing committed lost, nothing half visible, `check` clean.
#[test]
fn crash_at_each_point_between_metadata_and_filesystem_is_reclaimed() {
    if !require_root("crash_at_each_point_between_metadata_and_filesystem_is_reclaimed") {
        return;
    }
    use strata_containerd::meta::{Journal, Meta};
    let home = TempHome::new();
    let socket = home.outside().join("ctrd.sock");
    {
        let _s = ServerProcess::start(home.home(), &socket);
        let mut c = Client::connect(&socket).unwrap();
        c.prepare("base-a", "").unwrap();
        c.commit("base", "base-a").unwrap();
        c.prepare("loose", "").unwrap();
        c.prepare("doomed-a", "base").unwrap();
        c.commit("doomed", "doomed-a").unwrap();
    }
    type Op = fn(&mut Client) -> Result<(), tonic::Status>;
    let points: [(&str, Op, &str); 5] = [
        (
            "prepare-reserved",
            |c| c.prepare("new", "base").map(|_| ()),
            "creating",
        ),
        (
            "prepare-created",
            |c| c.prepare("new", "base").map(|_| ()),
            "creating",
        ),
        (
            "commit-rebased",
            |c| c.commit_full("loose-c", "loose", Default::default(), "base"),
            "rebasing",
        ),
        ("remove-reserved", |c| c.remove("doomed"), "removing"),
        // The last one really removes it (no crash at that point this time).
        ("none", |c| c.remove("doomed"), ""),
    ];
    for (point, op, state) in points {
        let mut s = ServerProcess::start_env(
            home.home(),
            &socket,
            &[("STRATA_CONTAINERD_CRASH_AT", point)],
        );
        let mut c = Client::connect(&socket).unwrap();
        let r = op(&mut c);
        if state.is_empty() {
            r.unwrap();
            continue;
        }
        assert!(r.is_err(), "{point}: the call succeeded");
        let st = s.wait();
        assert!(!st.success(), "{point}: {st}");
        drop(s);
        {
            let meta = Meta::open(home.home()).unwrap();
            let open: Vec<String> = meta
                .journal()
                .unwrap()
                .into_iter()
                .filter(|(_, j)| !matches!(j, Journal::Live { .. }))
                .map(|(_, j)| serde_json_state(&j))
                .collect();
            assert_eq!(open, [state], "{point}: the journal");
        }
        // `strata check` sees it; for two of the points `strata check --repair` settles it
        // (for the others the restart below does).
        let found = strata_containerd::check_root(home.home(), false)
            .unwrap()
            .unwrap();
        assert_eq!(found.len(), 1, "{point}: {found:?}");
        assert_eq!(found[0].kind, "interrupted-snapshot-operation");
        assert!(!found[0].repaired);
        if matches!(point, "prepare-created" | "remove-reserved") {
            let fixed = strata_containerd::check_root(home.home(), true)
                .unwrap()
                .unwrap();
            assert!(fixed.iter().all(|p| p.repaired), "{point}: {fixed:?}");
            assert!(strata_containerd::check_root(home.home(), false)
                .unwrap()
                .unwrap()
                .is_empty());
        }
        let _s = ServerProcess::start(home.home(), &socket);
        let mut c = Client::connect(&socket).unwrap();
        let names = c.names(&[]);
        match point {
            "prepare-reserved" | "prepare-created" => {
                assert_eq!(names, ["base", "doomed", "loose"], "{point}");
            }
            "commit-rebased" => {
                // Not committed: still the parent-less active it was, mounted as a bind.
                assert_eq!(names, ["base", "doomed", "loose"], "{point}");
                assert_eq!(c.stat("loose").unwrap().parent, "");
                assert_eq!(c.mounts("loose").unwrap()[0].r#type, "bind");
            }
            "remove-reserved" => {
                // The record went in the committed transaction; the layer follows at restart.
                assert_eq!(names, ["base", "loose"], "{point}");
                c.prepare("doomed-a", "base").unwrap();
                c.commit("doomed", "doomed-a").unwrap();
            }
            _ => unreachable!(),
        }
        c.cleanup().unwrap();
        let report = home.driver.check(false).unwrap();
        assert!(report.is_clean(), "{point}: {:?}", report.problems);
        assert_eq!(
            home.driver.list().unwrap().len(),
            c.names(&[]).len(),
            "{point}: stray layers"
        );
    }
}

fn serde_json_state(j: &strata_containerd::meta::Journal) -> String {
    use strata_containerd::meta::Journal;
    match j {
        Journal::Creating { .. } => "creating",
        Journal::Live { .. } => "live",
        Journal::Removing { .. } => "removing",
        Journal::Rebasing { .. } => "rebasing",
    }
    .to_owned()
}
