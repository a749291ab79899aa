//! A model check of the mount reference counts, on the real store: every interleaving of a few
//! actors' scripts (each actor its own `Driver`, as separate processes would be) of get, put,
//! restart, remove and cleanup is run against a real home. A small model says after every step
//! what must be true — which layers exist, and which must be mounted because some actor holds a
//! reference that nothing has voided — and the mount table, the layer directories and the count
//! files are checked against it. No interleaving may leak a mount, unmount a layer that is still
//! in use, or leave a count or link of a removed layer behind.
//!
//! Each store operation holds the layer's `flock` from start to end, so operations are atomic
//! with respect to each other and the interleavings of whole operations are all the orders the
//! store can see (the threaded and two-instance tests in `mounts.rs` race them for real).
//!
//! The engine contract the scripts keep: remove and cleanup unmount whatever holds a layer (as
//! moby's Remove and Cleanup do) and void the references out on it; a holder whose reference was
//! voided may still put it — a put of a removed layer fails with "not found", a put after
//! cleanup changes nothing — but only while no one else holds that layer again (the count is per
//! layer, not per holder, in strata as in moby, so such a put would be taken as the new holder's).

use std::collections::BTreeMap;
use std::path::Path;

use strata::layout::Layout;
use strata::mount::refs::Refs as StoredCounts;
use strata::{Driver, Options, StorageOpts};
use strata_testkit::layer_id as id;
use strata_testkit::{require_root, TempHome};

const NONE: &StorageOpts = &StorageOpts {
    size: None,
    inodes: None,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Get(&'static str),
    Put(&'static str),
    /// The actor's process restarts: a fresh `Driver` on the same home; its references stay
    /// counted on disk.
    Restart,
    /// Removes the layer (moby's Remove: unmounts it whatever holds it).
    Remove(&'static str),
    /// The driver's cleanup (daemon shutdown): unmounts everything, forgets every count.
    Cleanup,
}

/// Every way to merge the scripts (of these lengths) keeping each one's own order: sequences of
/// actor numbers.
fn interleavings(lens: &[usize]) -> Vec<Vec<usize>> {
    if lens.iter().all(|&n| n == 0) {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for who in 0..lens.len() {
        if lens[who] == 0 {
            continue;
        }
        let mut rest = lens.to_vec();
        rest[who] -= 1;
        for mut tail in interleavings(&rest) {
            tail.insert(0, who);
            out.push(tail);
        }
    }
    out
}

fn is_mounted(target: &Path) -> bool {
    strata_testkit::mounts_under(target)
        .iter()
        .any(|m| m == target)
}

/// One actor's references to one layer.
#[derive(Debug, Default, Clone, Copy)]
struct Refs {
    /// Taken and not voided: the layer must stay mounted while any actor has one.
    live: usize,
    /// Taken, then voided by a remove or cleanup; not yet put.
    void: usize,
}

/// What the store must look like: per layer, whether it exists, and per actor its references.
struct Model {
    exists: BTreeMap<&'static str, bool>,
    refs: Vec<BTreeMap<&'static str, Refs>>,
}

impl Model {
    fn live(&self, layer: &str) -> usize {
        self.refs
            .iter()
            .map(|m| m.get(layer).map_or(0, |r| r.live))
            .sum()
    }

    fn void_all(&mut self, layer: Option<&str>) {
        for m in &mut self.refs {
            for (l, r) in m.iter_mut() {
                if layer.is_none_or(|x| x == *l) {
                    r.void += r.live;
                    r.live = 0;
                }
            }
        }
    }
}

struct Actor {
    driver: Driver,
}

/// A home with a base layer and the writable children `names` on it.
fn setup(h: &TempHome, names: &[&'static str]) {
    let d = &h.driver;
    d.create(&id("base"), None, NONE).unwrap();
    std::fs::write(h.home().join("base/diff/from-base"), "b").unwrap();
    for n in names {
        d.create_read_write(&id(n), Some(&id("base")), NONE)
            .unwrap();
    }
}

/// Runs one interleaving on the home, checking the store against the model after every step;
/// returns the live references left (actors that end holding one stand for processes killed
/// while holding a mount).
fn run(home: &Path, layers: &[&'static str], scripts: &[&[Step]], order: &[usize]) -> usize {
    let open = || Driver::open(home, Options::default()).unwrap();
    let layout = Layout::new(home.to_owned());
    let refs = StoredCounts::new(layout.clone());
    let mut actors: Vec<Actor> = scripts.iter().map(|_| Actor { driver: open() }).collect();
    let mut model = Model {
        exists: layers.iter().map(|l| (*l, true)).collect(),
        refs: vec![BTreeMap::new(); scripts.len()],
    };
    let mut next = vec![0usize; scripts.len()];
    for (n, &who) in order.iter().enumerate() {
        let step = scripts[who][next[who]];
        next[who] += 1;
        let ctx = format!("order {order:?}, step {n} ({step:?} by actor {who})");
        let driver = &mut actors[who].driver;
        match step {
            Step::Get(l) => {
                let got = driver.get(&id(l), "");
                if model.exists[l] {
                    assert_eq!(got.unwrap(), layout.merged(&id(l)), "{ctx}");
                    model.refs[who].entry(l).or_default().live += 1;
                } else {
                    let e = got.expect_err(&ctx);
                    assert!(e.is_not_found(), "{ctx}: {e}");
                }
            }
            Step::Put(l) => {
                let r = model.refs[who].entry(l).or_default();
                let voided = r.live == 0;
                if !voided {
                    r.live -= 1;
                } else if r.void > 0 {
                    r.void -= 1;
                } else {
                    // Its get failed: only a removed layer refuses a get in these scripts.
                    assert!(!model.exists[l], "{ctx}: the script puts what it never got");
                }
                let put = driver.put(&id(l));
                if model.exists[l] {
                    assert!(
                        !voided || model.live(l) == 0,
                        "{ctx}: the scripts break the contract (a voided put while others hold)"
                    );
                    put.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                } else {
                    let e = put.expect_err(&ctx);
                    assert!(e.is_not_found(), "{ctx}: {e}");
                }
            }
            Step::Restart => *driver = open(),
            Step::Remove(l) => {
                driver.remove(&id(l)).unwrap();
                model.exists.insert(l, false);
                model.void_all(Some(l));
            }
            Step::Cleanup => {
                driver.cleanup().unwrap();
                model.void_all(None);
            }
        }
        for &l in layers {
            let merged = layout.merged(&id(l));
            let want = model.exists[l] && model.live(l) > 0;
            assert_eq!(is_mounted(&merged), want, "{ctx}: layer {l} mounted?");
            // The stored count is the live references: none stored while nothing is live.
            let stored = refs.stored(l).unwrap();
            let live = if model.exists[l] { model.live(l) } else { 0 };
            assert_eq!(stored, live as u64, "{ctx}: stored count of {l}");
            if want {
                // Still the layer's own mount: the base's file shows through.
                assert!(merged.join("from-base").exists(), "{ctx}");
            } else {
                assert!(!merged.exists(), "{ctx}: {} left", merged.display());
            }
            if !model.exists[l] {
                assert!(!layout.layer(&id(l)).exists(), "{ctx}: {l} not removed");
                assert!(
                    !layout.mount_count(l).exists(),
                    "{ctx}: a count of removed {l} left"
                );
            }
        }
        // Mounts under the home are exactly the ones the model wants (nothing else leaked).
        let mounted = strata_testkit::mounts_under(home).len();
        let wanted = layers
            .iter()
            .filter(|l| model.exists[**l] && model.live(l) > 0)
            .count();
        assert_eq!(mounted, wanted, "{ctx}: mounts under the home");
    }
    layers.iter().map(|l| model.live(l)).sum()
}

/// Runs every interleaving of `scripts`, each on one home set up once (`fresh == false`; the
/// scripts must then leave it as found) or on a fresh home each (`fresh == true`); `after`
/// checks each home when an interleaving is done. Returns how many interleavings ran.
fn run_all(
    layers: &[&'static str],
    scripts: &[&[Step]],
    fresh: bool,
    mut after: impl FnMut(&TempHome, &[usize], usize),
) -> usize {
    let orders = interleavings(&scripts.iter().map(|s| s.len()).collect::<Vec<_>>());
    let mut shared = (!fresh).then(|| {
        let h = TempHome::new();
        setup(&h, layers);
        h
    });
    for order in &orders {
        let own;
        let h = match &mut shared {
            Some(h) => &*h,
            None => {
                own = TempHome::new();
                setup(&own, layers);
                &own
            }
        };
        let left = run(h.home(), layers, scripts, order);
        after(h, order, left);
    }
    orders.len()
}

fn assert_clean(h: &TempHome, order: &[usize]) {
    let report = h.driver.check(false).unwrap();
    assert!(report.is_clean(), "order {order:?}: {report:?}");
}

#[test]
fn refcount_every_interleaving_of_two_holders_mounts_exactly_while_held() {
    if !require_root("refcount_every_interleaving_of_two_holders_mounts_exactly_while_held") {
        return;
    }
    use Step::*;
    let a: &[Step] = &[Get("top"), Get("top"), Put("top"), Put("top")];
    let b: &[Step] = &[Get("top"), Put("top"), Restart, Get("top"), Put("top")];
    let n = run_all(&["top"], &[a, b], false, |h, order, left| {
        assert_eq!(left, 0);
        assert!(h.mounts().is_empty(), "order {order:?} leaked a mount");
        assert_clean(h, order);
    });
    assert_eq!(n, 126);
}

#[test]
fn refcount_holder_killed_while_holding_keeps_mount_until_cleanup() {
    if !require_root("refcount_holder_killed_while_holding_keeps_mount_until_cleanup") {
        return;
    }
    use Step::*;
    // Actor A takes a reference and dies with it; B comes and goes around it.
    let a: &[Step] = &[Get("top")];
    let b: &[Step] = &[Get("top"), Put("top"), Restart, Get("top"), Put("top")];
    let n = run_all(&["top"], &[a, b], true, |h, order, left| {
        assert_eq!(left, 1, "{order:?}");
        // A's reference outlives it: the mount stays (it may be in use by what A started).
        assert_eq!(h.mounts().len(), 1, "order {order:?}");
        // What an operator (or dockerd at shutdown) runs reclaims it.
        h.driver.cleanup().unwrap();
        assert!(h.mounts().is_empty(), "order {order:?}");
        assert_clean(h, order);
        // The layer mounts again from a clean count.
        h.driver.get(&id("top"), "").unwrap();
        h.driver.put(&id("top")).unwrap();
        assert!(h.mounts().is_empty(), "order {order:?}");
    });
    assert_eq!(n, 6);
}

#[test]
fn refcount_remove_at_any_point_takes_its_layer_and_nothing_else() {
    if !require_root("refcount_remove_at_any_point_takes_its_layer_and_nothing_else") {
        return;
    }
    use Step::*;
    // A uses `top` twice, one reference at a time, restarting between; B holds the sibling
    // `other` (same parent) around the remove; R removes `top` at any point, also while A
    // holds it.
    let a: &[Step] = &[Get("top"), Put("top"), Restart, Get("top"), Put("top")];
    let b: &[Step] = &[Get("other"), Put("other")];
    let r: &[Step] = &[Remove("top")];
    let layers = ["top", "other"];
    let n = run_all(&layers, &[a, b, r], true, |h, order, left| {
        assert_eq!(left, 0, "{order:?}");
        assert!(h.mounts().is_empty(), "order {order:?} leaked a mount");
        assert_clean(h, order);
        let mut left = h.driver.list().unwrap();
        left.sort();
        assert_eq!(left, [id("base"), id("other")], "order {order:?}");
        // No link of `top` is left: the base's and other's are all there is.
        let links = std::fs::read_dir(h.home().join("l")).unwrap().count();
        assert_eq!(links, 2, "order {order:?}");
    });
    // 8! / (5! 2! 1!)
    assert_eq!(n, 168);
}

#[test]
fn refcount_cleanup_at_any_point_leaves_nothing_mounted_and_counts_start_over() {
    if !require_root("refcount_cleanup_at_any_point_leaves_nothing_mounted_and_counts_start_over") {
        return;
    }
    use Step::*;
    // Two holders of two layers, each taking its layer twice, one reference at a time; a third
    // process runs cleanup at any point, voiding what is held: a holder's next get must mount
    // its layer afresh, and its put of a voided reference must change nothing.
    let x: &[Step] = &[Get("a"), Put("a"), Get("a"), Put("a")];
    let y: &[Step] = &[Get("b"), Put("b"), Get("b"), Put("b")];
    let c: &[Step] = &[Cleanup];
    let layers = ["a", "b"];
    let n = run_all(&layers, &[x, y, c], false, |h, order, left| {
        assert_eq!(left, 0, "{order:?}");
        assert!(h.mounts().is_empty(), "order {order:?} leaked a mount");
        assert_clean(h, order);
    });
    // 9! / (4! 4! 1!)
    assert_eq!(n, 630);
}
