//! Crash safety: a process killed with SIGKILL at any point of create or remove leaves every
//! layer whole or absent; `check` finds only what `--repair` can fix, and afterwards every layer
//! mounts. The test re-runs its own binary as the victim process.

use std::process::{Command, Stdio};
use std::time::Duration;

use strata::{Driver, Options, StorageOpts};
use strata_testkit::layer_id as id;
use strata_testkit::{require_root, TempHome};

const CHILD_ENV: &str = "STRATA_CRASH_CHILD_HOME";

/// The victim: creates chains and removes layers until killed.
fn victim(home: &str) -> ! {
    let d = Driver::open(home, Options::default()).unwrap();
    let none = StorageOpts::default();
    let pid = std::process::id();
    for i in 0u64.. {
        let base = id(&format!("v{pid}-{i}-base"));
        let mid = id(&format!("v{pid}-{i}-mid"));
        let top = id(&format!("v{pid}-{i}-top"));
        d.create(&base, None, &none).unwrap();
        d.create(&mid, Some(&base), &none).unwrap();
        d.create_read_write(&top, Some(&mid), &none).unwrap();
        let root = d.get(&top, "").unwrap();
        std::fs::write(root.join("data"), i.to_string()).unwrap();
        d.put(&top).unwrap();
        if i % 2 == 0 {
            d.remove(&top).unwrap();
            d.remove(&mid).unwrap();
        }
    }
    unreachable!()
}

#[test]
fn create_remove_killed_midway_leaves_whole_layers_only() {
    if let Ok(home) = std::env::var(CHILD_ENV) {
        victim(&home);
    }
    if !require_root("create_remove_killed_midway_leaves_whole_layers_only") {
        return;
    }
    let h = TempHome::new();
    let exe = std::env::current_exe().unwrap();
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args([
                "crash::create_remove_killed_midway_leaves_whole_layers_only",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD_ENV, h.home())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Start the clock once the victim is at work (slow machines and emulated guests take
        // long to start it), then kill it at a different point each round.
        let started = std::time::Instant::now();
        let before = h.driver.list().unwrap().len();
        while h.driver.list().unwrap().len() <= before {
            // A victim that failed (a broken store) says so now, not after the wait.
            if let Some(status) = child.try_wait().unwrap() {
                panic!("round {round}: the victim exited ({status}) before creating a layer");
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the victim never created a layer"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(20 + round * 37));
        child.kill().unwrap();
        child.wait().unwrap();

        let report = h.driver.check(false).unwrap();
        for p in &report.problems {
            assert!(
                [
                    "leftover-staging",
                    "dangling-link",
                    "unreferenced-mount",
                    "stale-mount-count"
                ]
                .contains(&p.kind.as_str()),
                "round {round}: a kill left a damaged layer: {p:?}"
            );
        }
        eprintln!(
            "round {round}: {:?}",
            report
                .problems
                .iter()
                .map(|p| p.kind.as_str())
                .collect::<Vec<_>>()
        );
        let repaired = h.driver.check(true).unwrap();
        assert!(repaired.all_repaired(), "round {round}: {repaired:?}");
        assert!(h.driver.check(false).unwrap().is_clean());
        let layers = h.driver.list().unwrap();
        assert!(
            !layers.is_empty(),
            "round {round}: the victim made no layer"
        );
        for l in &layers {
            // Whole: link file, diff and, for children, a lower chain that mounts.
            let root = h.driver.get(l, "").unwrap();
            assert!(root.is_dir(), "{l}");
            h.driver.put(l).unwrap();
        }
        // A killed holder's reference is indistinguishable from a live one (a `strata mount`
        // outlives its process by design); dropping them is what cleanup is for.
        h.driver.cleanup().unwrap();
    }
}
