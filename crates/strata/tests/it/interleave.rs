//! A model check of the mount reference counts, on the real store: every interleaving of two
//! holders' get/put sequences (each holder its own `Driver`, as two processes would be; one
//! restarts midway, one dies holding a reference) is run against a real home, and after every
//! step the mount table must say exactly what the outstanding references say — mounted while
//! any holder has one, unmounted once none has. No interleaving may leak a mount or unmount a
//! layer that is still in use.
//!
//! Each store operation holds the layer's `flock` from start to end, so operations are atomic
//! with respect to each other and the interleavings of whole operations are all the orders the
//! store can see (the threaded and two-instance tests in `mounts.rs` race them for real).

use std::path::{Path, PathBuf};

use strata::{Driver, LayerId, Options, StorageOpts};
use strata_testkit::layer_id as id;
use strata_testkit::{require_root, TempHome};

const NONE: &StorageOpts = &StorageOpts {
    size: None,
    inodes: None,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Get,
    Put,
    /// The holder's process restarts: a fresh `Driver` on the same home; its references
    /// stay counted on disk.
    Restart,
}

/// Every way to merge `a` and `b` keeping each one's own order.
fn interleavings(a: usize, b: usize) -> Vec<Vec<usize>> {
    if a == 0 {
        return vec![vec![1; b]];
    }
    if b == 0 {
        return vec![vec![0; a]];
    }
    let mut out = Vec::new();
    for mut rest in interleavings(a - 1, b) {
        rest.insert(0, 0);
        out.push(rest);
    }
    for mut rest in interleavings(a, b - 1) {
        rest.insert(0, 1);
        out.push(rest);
    }
    out
}

fn is_mounted(target: &Path) -> bool {
    strata_testkit::mounts_under(target)
        .iter()
        .any(|m| m == target)
}

struct Holder {
    driver: Driver,
    held: usize,
}

/// Runs one interleaving; `abandon` holders keep what they hold at the end (a process killed
/// while holding a mount). Returns the references still outstanding.
fn run(home: &Path, top: &LayerId, scripts: [&[Step]; 2], order: &[usize]) -> usize {
    let open = || Driver::open(home, Options::default()).unwrap();
    let mut holders = [
        Holder {
            driver: open(),
            held: 0,
        },
        Holder {
            driver: open(),
            held: 0,
        },
    ];
    let mut next = [0usize; 2];
    let merged: PathBuf = home.join(top.as_str()).join("merged");
    for (n, &who) in order.iter().enumerate() {
        let step = scripts[who][next[who]];
        next[who] += 1;
        let h = &mut holders[who];
        match step {
            Step::Get => {
                let p = h.driver.get(top, "").unwrap();
                assert_eq!(p, merged);
                h.held += 1;
            }
            Step::Put => {
                h.driver.put(top).unwrap();
                h.held -= 1;
            }
            Step::Restart => h.driver = open(),
        }
        let outstanding: usize = holders.iter().map(|h| h.held).sum();
        let ctx = format!("order {order:?}, after step {n} ({step:?} by holder {who})");
        assert_eq!(is_mounted(&merged), outstanding > 0, "{ctx}");
        if outstanding > 0 {
            // Still the layer's own mount: the base's file shows through, writes land in diff.
            assert!(merged.join("from-base").exists(), "{ctx}");
        }
    }
    holders.iter().map(|h| h.held).sum()
}

fn setup(h: &TempHome) -> LayerId {
    let d = &h.driver;
    d.create(&id("base"), None, NONE).unwrap();
    std::fs::write(h.home().join("base/diff/from-base"), "b").unwrap();
    d.create_read_write(&id("top"), Some(&id("base")), NONE)
        .unwrap();
    id("top")
}

#[test]
fn refcount_every_interleaving_of_two_holders_mounts_exactly_while_held() {
    if !require_root("refcount_every_interleaving_of_two_holders_mounts_exactly_while_held") {
        return;
    }
    use Step::*;
    let a: &[Step] = &[Get, Get, Put, Put];
    let b: &[Step] = &[Get, Put, Restart, Get, Put];
    let h = TempHome::new();
    let top = setup(&h);
    let orders = interleavings(a.len(), b.len());
    assert_eq!(orders.len(), 126);
    for order in &orders {
        assert_eq!(run(h.home(), &top, [a, b], order), 0);
        assert!(h.mounts().is_empty(), "order {order:?} leaked a mount");
        assert!(!h.home().join("top/merged").exists(), "order {order:?}");
    }
    let report = h.driver.check(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn refcount_holder_killed_while_holding_keeps_mount_until_cleanup() {
    if !require_root("refcount_holder_killed_while_holding_keeps_mount_until_cleanup") {
        return;
    }
    use Step::*;
    // Holder A takes a reference and dies with it; B comes and goes around it.
    let a: &[Step] = &[Get];
    let b: &[Step] = &[Get, Put, Restart, Get, Put];
    let orders = interleavings(a.len(), b.len());
    for order in &orders {
        let h = TempHome::new();
        let top = setup(&h);
        assert_eq!(run(h.home(), &top, [a, b], order), 1, "{order:?}");
        // A's reference outlives it: the mount stays (it may be in use by what A started).
        assert_eq!(h.mounts().len(), 1, "order {order:?}");
        // What an operator (or dockerd at shutdown) runs reclaims it.
        h.driver.cleanup().unwrap();
        assert!(h.mounts().is_empty(), "order {order:?}");
        let report = h.driver.check(false).unwrap();
        assert!(report.is_clean(), "order {order:?}: {report:?}");
        // The layer mounts again from a clean count.
        h.driver.get(&top, "").unwrap();
        h.driver.put(&top).unwrap();
        assert!(h.mounts().is_empty(), "order {order:?}");
    }
}
