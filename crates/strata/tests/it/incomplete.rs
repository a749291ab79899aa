//! Layers a fill left incomplete: an apply that lands in place (into a layer that is not empty,
//! is mounted, or through a mount for a diff against another layer than the direct parent) and
//! fails, or is killed, leaves the layer marked; `check` reports it, mounting it or building on
//! it is refused, `check --repair` removes it and nothing else. And a layer whose lower is gone
//! names the missing layer.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata::{Driver, Error, LayerId, Options, StorageOpts};
use strata_testkit::images::files_tar;
use strata_testkit::layer_id as id;
use strata_testkit::{require_root, TempHome};

const NONE: &StorageOpts = &StorageOpts {
    size: None,
    inodes: None,
};

/// A tar of two files cut inside the second file's data: the first file lands, then the apply
/// fails.
fn broken_tar() -> Vec<u8> {
    let full = files_tar(&[("first", "one\n"), ("second", &"x".repeat(4096))]);
    // Header + one block for `first`, the second header, then half of its data.
    full[..512 * 3 + 2048].to_vec()
}

fn kinds(d: &Driver) -> Vec<String> {
    let mut v: Vec<String> = d
        .check(false)
        .unwrap()
        .problems
        .into_iter()
        .map(|p| p.kind)
        .collect();
    v.sort();
    v
}

/// What every test asserts once `layer` was left incomplete: check reports it (and nothing
/// else), mounting it and creating on it are refused naming it, repair removes it and only it
/// (with `children`, which are built on it), and `other` still mounts with its content.
fn assert_incomplete_then_repaired(d: &Driver, layer: &LayerId, children: &[&LayerId]) {
    let report = d.check(false).unwrap();
    assert!(!report.is_clean());
    assert_eq!(kinds(d), ["incomplete-layer"], "{report:?}");
    assert_eq!(report.problems[0].path, d.layout().layer(layer));

    let e = d.get(layer, "").unwrap_err();
    assert!(
        matches!(&e, Error::Incomplete { incomplete, .. } if incomplete == layer.as_str()),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("incomplete") && msg.contains("check --repair"),
        "{msg}"
    );
    for child in children {
        let e = d.get(child, "").unwrap_err();
        assert!(
            matches!(&e, Error::Incomplete { incomplete, .. } if incomplete == layer.as_str()),
            "a layer built on it: {e:?}"
        );
    }
    // Reading its changes is refused too, natively as through mounts: a partial tree would
    // export as a layer that looks whole.
    for l in std::iter::once(layer).chain(children.iter().copied()) {
        let parent = d.parent(l).unwrap();
        for p in [parent.as_ref(), Some(&id("other"))] {
            let refused = |e: Error| {
                assert!(
                    matches!(&e, Error::Incomplete { incomplete, .. } if incomplete == layer.as_str()),
                    "{l} against {p:?}: {e:?}"
                )
            };
            refused(d.diff(l, p, std::io::sink()).unwrap_err());
            refused(d.changes(l, p).unwrap_err());
            refused(d.diff_size(l, p).unwrap_err());
        }
    }
    let e = d
        .create_read_write(&id("on-incomplete"), Some(layer), NONE)
        .unwrap_err();
    assert!(
        matches!(&e, Error::Incomplete { incomplete, .. } if incomplete == layer.as_str()),
        "{e:?}"
    );
    assert!(!d.exists(&id("on-incomplete")));

    let before: Vec<LayerId> = d.list().unwrap();
    let repaired = d.check(true).unwrap();
    assert!(repaired.all_repaired(), "{repaired:?}");
    assert!(d.check(false).unwrap().is_clean());
    let mut expected: Vec<LayerId> = before
        .into_iter()
        .filter(|l| l != layer && !children.contains(&l))
        .collect();
    expected.sort();
    assert_eq!(
        d.list().unwrap(),
        expected,
        "only the incomplete layer went"
    );
    assert!(!d.layout().incomplete(layer).exists());
    let other = d.get(&id("other"), "").unwrap();
    assert_eq!(std::fs::read_to_string(other.join("kept")).unwrap(), "kept");
    d.put(&id("other")).unwrap();
}

fn other_layer(d: &Driver) {
    d.create(&id("other"), None, NONE).unwrap();
    d.apply_diff(&id("other"), None, &files_tar(&[("kept", "kept")])[..])
        .unwrap();
}

#[test]
fn failed_apply_into_non_empty_layer_leaves_it_incomplete() {
    if !require_root("failed_apply_into_non_empty_layer_leaves_it_incomplete") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    other_layer(d);
    let l = id("layer");
    d.create(&l, None, NONE).unwrap();
    d.apply_diff(&l, None, &files_tar(&[("base", "b")])[..])
        .unwrap();
    assert!(d.check(false).unwrap().is_clean());
    d.apply_diff(&l, None, &broken_tar()[..]).unwrap_err();
    assert!(
        d.layout().diff(&l).join("first").exists(),
        "the in-place apply wrote before it failed"
    );
    assert_incomplete_then_repaired(d, &l, &[]);
}

#[test]
fn failed_apply_into_mounted_layer_leaves_it_incomplete() {
    if !require_root("failed_apply_into_mounted_layer_leaves_it_incomplete") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    other_layer(d);
    d.create(&id("base"), None, NONE).unwrap();
    let l = id("layer");
    d.create_read_write(&l, Some(&id("base")), NONE).unwrap();
    d.get(&l, "").unwrap();
    d.apply_diff(&l, Some(&id("base")), &broken_tar()[..])
        .unwrap_err();
    d.put(&l).unwrap();
    assert_incomplete_then_repaired(d, &l, &[]);
    assert!(d.exists(&id("base")));
}

#[test]
fn failed_apply_through_another_parent_leaves_it_incomplete() {
    if !require_root("failed_apply_through_another_parent_leaves_it_incomplete") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    other_layer(d);
    d.create(&id("a"), None, NONE).unwrap();
    d.create(&id("b"), Some(&id("a")), NONE).unwrap();
    let l = id("layer");
    d.create(&l, Some(&id("b")), NONE).unwrap();
    // Not the direct parent: applied through the mounted layer.
    d.apply_diff(&l, Some(&id("a")), &broken_tar()[..])
        .unwrap_err();
    assert!(h.mounts().is_empty(), "the apply's mount was released");
    assert_incomplete_then_repaired(d, &l, &[]);
    assert!(d.exists(&id("a")) && d.exists(&id("b")));
}

#[test]
fn incomplete_layer_with_children_refuses_them_and_repair_removes_them() {
    if !require_root("incomplete_layer_with_children_refuses_them_and_repair_removes_them") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    other_layer(d);
    let l = id("layer");
    d.create(&l, None, NONE).unwrap();
    d.apply_diff(&l, None, &files_tar(&[("base", "b")])[..])
        .unwrap();
    let child = id("child");
    d.create_read_write(&child, Some(&l), NONE).unwrap();
    // The base is re-applied in place (it is not empty) and the tar breaks.
    d.apply_diff(&l, None, &broken_tar()[..]).unwrap_err();
    assert_incomplete_then_repaired(d, &l, &[&child]);
}

#[test]
fn completed_apply_clears_the_incomplete_mark() {
    if !require_root("completed_apply_clears_the_incomplete_mark") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let l = id("layer");
    d.create(&l, None, NONE).unwrap();
    d.apply_diff(&l, None, &files_tar(&[("base", "b")])[..])
        .unwrap();
    d.apply_diff(&l, None, &broken_tar()[..]).unwrap_err();
    assert_eq!(kinds(d), ["incomplete-layer"]);
    let full = files_tar(&[("first", "one\n"), ("second", &"x".repeat(4096))]);
    d.apply_diff(&l, None, &full[..]).unwrap();
    assert!(d.check(false).unwrap().is_clean());
    let root = d.get(&l, "").unwrap();
    assert_eq!(std::fs::read(root.join("second")).unwrap().len(), 4096);
    d.put(&l).unwrap();
}

#[test]
fn failed_native_apply_into_empty_layer_is_all_or_nothing_without_a_mark() {
    if !require_root("failed_native_apply_into_empty_layer_is_all_or_nothing_without_a_mark") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let l = id("layer");
    d.create(&l, None, NONE).unwrap();
    d.apply_diff(&l, None, &broken_tar()[..]).unwrap_err();
    if d.status()
        .iter()
        .any(|(k, v)| k == "Native Overlay Diff" && v == "true")
    {
        assert!(d.check(false).unwrap().is_clean());
        assert_eq!(std::fs::read_dir(d.layout().diff(&l)).unwrap().count(), 0);
    } else {
        // Without native diff every apply goes through a mount, in place, and is marked.
        assert_eq!(kinds(d), ["incomplete-layer"]);
    }
}

const CHILD_ENV: &str = "STRATA_INCOMPLETE_CHILD_HOME";

/// Gives `head`, then blocks forever: an apply reading it is stuck midway.
struct Stalls {
    head: std::io::Cursor<Vec<u8>>,
}

impl Read for Stalls {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.head.read(buf)?;
        if n == 0 {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Ok(n)
    }
}

#[test]
fn apply_killed_midway_leaves_layer_incomplete_and_repair_removes_it() {
    if let Ok(home) = std::env::var(CHILD_ENV) {
        // The victim: an in-place apply (the layer is not empty) that stalls after one file.
        let d = Driver::open(home, Options::default()).unwrap();
        let full = files_tar(&[("first", "one\n"), ("second", "two\n")]);
        let _ = d.apply_diff(
            &id("layer"),
            None,
            Stalls {
                head: std::io::Cursor::new(full[..1024].to_vec()),
            },
        );
        unreachable!("the stalled apply never returns");
    }
    if !require_root("apply_killed_midway_leaves_layer_incomplete_and_repair_removes_it") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    other_layer(d);
    let l = id("layer");
    d.create(&l, None, NONE).unwrap();
    d.apply_diff(&l, None, &files_tar(&[("base", "b")])[..])
        .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "incomplete::apply_killed_midway_leaves_layer_incomplete_and_repair_removes_it",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, h.home())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let killer = KillOnDrop(&mut child);
    let started = Instant::now();
    while !d.layout().diff(&l).join("first").exists() {
        if let Some(status) = killer.0.try_wait().unwrap() {
            panic!("the victim exited ({status}) before applying");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the victim never applied"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Midway, as seen by others: the fill is in progress, so nothing is reported yet.
    assert!(d.check(false).unwrap().is_clean());
    drop(killer);
    assert_incomplete_then_repaired(d, &l, &[]);
}

/// SIGKILLs and reaps the child, also when the test fails.
struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn mount_of_layer_whose_lower_is_gone_names_the_missing_layer() {
    if !require_root("mount_of_layer_whose_lower_is_gone_names_the_missing_layer") {
        return;
    }
    // Both mount paths: lowerdir+ (where the kernel has it) and legacy mount(2).
    missing_lower_is_named(&TempHome::new());
    let legacy = strata::Options::parse(["strata.mount_api=legacy"]).unwrap();
    missing_lower_is_named(&TempHome::with_options(legacy));
}

fn missing_lower_is_named(h: &TempHome) {
    let d = &h.driver;
    d.create(&id("base"), None, NONE).unwrap();
    d.create(&id("mid"), Some(&id("base")), NONE).unwrap();
    d.create_read_write(&id("top"), Some(&id("mid")), NONE)
        .unwrap();
    // The lower's directory vanished but its short link is there: the id is named.
    let mid_dir = d.layout().layer(&id("mid"));
    let aside = h.outside().join("mid-aside");
    std::fs::rename(&mid_dir, &aside).unwrap();
    for e in [
        d.get(&id("top"), "").unwrap_err(),
        d.metadata(&id("top")).unwrap_err(),
        d.parent(&id("top")).unwrap_err(),
    ] {
        assert!(
            matches!(&e, Error::MissingLower { lower, position, .. }
                if lower == "mid" && position == "1st"),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("lower layer mid is missing") && msg.contains("strata check"),
            "{msg}"
        );
    }
    std::fs::rename(&aside, &mid_dir).unwrap();
    assert!(
        !d.layout().merged(&id("top")).exists(),
        "a failed mount leaves no mount point"
    );
    // Removed (with its short link): only the link name is left to name it.
    let base_link = std::fs::read_to_string(d.layout().link_file(&id("base"))).unwrap();
    d.remove(&id("base")).unwrap();
    for e in [
        d.get(&id("top"), "").unwrap_err(),
        d.get(&id("mid"), "").unwrap_err(),
        d.metadata(&id("top")).unwrap_err(),
        d.changes(&id("top"), Some(&id("mid"))).unwrap_err(),
    ] {
        let msg = e.to_string();
        assert!(matches!(&e, Error::MissingLower { .. }), "{e:?}");
        assert!(
            msg.contains(&format!("l/{base_link}")) && msg.contains("strata check"),
            "{msg}"
        );
    }
    assert!(h.mounts().is_empty());
}

#[test]
fn marker_without_layer_and_leftover_marker_file_are_reported_and_repaired() {
    if !require_root("marker_without_layer_and_leftover_marker_file_are_reported_and_repaired") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    // A load killed after marking a layer, before creating it; and one killed while making a
    // marker (its staging file).
    drop(d.begin_fill(&id("never")).unwrap());
    std::fs::write(d.layout().staging().join("fill-x.0000000000000001"), "").unwrap();
    let r = d.check(false).unwrap();
    let mut kinds: Vec<&str> = r.problems.iter().map(|p| p.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["incomplete-layer", "leftover-staging"], "{r:?}");
    assert!(r.problems.iter().all(|p| !p.repaired), "{r:?}");
    assert!(
        d.layout().incomplete(&id("never")).exists(),
        "check without repair removes nothing"
    );
    assert!(r
        .problems
        .iter()
        .any(|p| p.path == d.layout().incomplete(&id("never"))));
    let r = d.check(true).unwrap();
    assert!(r.all_repaired(), "{r:?}");
    assert!(d.check(false).unwrap().is_clean());

    // A layer created where a stale marker of that id lay is whole.
    drop(d.begin_fill(&id("fresh")).unwrap());
    d.create(&id("fresh"), None, NONE).unwrap();
    assert!(d.check(false).unwrap().is_clean());
    d.get(&id("fresh"), "").unwrap();
    d.put(&id("fresh")).unwrap();
    // A held marker is a fill in progress: not a problem, not refused.
    let g = d.begin_fill(&id("fresh")).unwrap();
    assert!(!g.was_incomplete());
    assert!(d.check(false).unwrap().is_clean());
    d.get(&id("fresh"), "").unwrap();
    d.put(&id("fresh")).unwrap();
    g.finish().unwrap();
}

#[test]
fn apply_under_a_fill_marker_lands_and_another_homes_marker_is_refused() {
    if !require_root("apply_under_a_fill_marker_lands_and_another_homes_marker_is_refused") {
        return;
    }
    let h = TempHome::new();
    let elsewhere = TempHome::new();
    let d = &h.driver;
    let l = id("layer");
    // As a load does: mark, create, apply under the mark, finish.
    let fill = d.begin_fill(&l).unwrap();
    d.create(&l, None, NONE).unwrap();
    // The marker of a layer of the same name in another home does not mark this one.
    let foreign = elsewhere.driver.begin_fill(&l).unwrap();
    let e = d
        .apply_diff_filling(&foreign, None, &files_tar(&[("f", "x")])[..])
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidOption { .. }) && e.to_string().contains("another home"),
        "{e:?}"
    );
    assert_eq!(std::fs::read_dir(d.layout().diff(&l)).unwrap().count(), 0);
    foreign.finish().unwrap();
    d.apply_diff_filling(&fill, None, &files_tar(&[("f", "x")])[..])
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(d.layout().diff(&l).join("f")).unwrap(),
        "x"
    );
    // Being filled: not a problem, and the marker stays until the filler finishes.
    assert!(d.check(false).unwrap().is_clean());
    assert!(d.layout().incomplete(&l).exists());
    fill.finish().unwrap();
    assert!(!d.layout().incomplete(&l).exists());
    assert!(d.check(false).unwrap().is_clean());
    let root = d.get(&l, "").unwrap();
    assert_eq!(std::fs::read_to_string(root.join("f")).unwrap(), "x");
    d.put(&l).unwrap();
}

/// The immutable flag on a directory (`chattr +i`) for as long as it lives: nothing in it can be
/// removed, as on a failing disk.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(dir: std::path::PathBuf) -> Immutable {
        let st = Command::new("chattr").arg("+i").arg(&dir).status().unwrap();
        assert!(st.success(), "chattr +i {}", dir.display());
        Immutable(dir)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn marker_that_cannot_be_removed_is_an_error_and_stays() {
    if !require_root("marker_that_cannot_be_removed_is_an_error_and_stays") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("layer"), None, NONE).unwrap();
    let fill = d.begin_fill(&id("layer")).unwrap();
    drop(d.begin_fill(&id("never")).unwrap());
    let never = d.layout().incomplete(&id("never"));
    {
        let _frozen = Immutable::set(d.layout().incomplete_dir());
        // The filler finished, but its marker cannot go: it says so (the layer stays marked).
        let e = fill.finish().unwrap_err();
        assert!(e.to_string().contains("remove incomplete marker"), "{e}");
        // Repair cannot remove the stale marker either, and does not claim it did.
        let r = d.check(true).unwrap();
        let p = r.problems.iter().find(|p| p.path == never).unwrap();
        assert!(!p.repaired, "{r:?}");
        assert!(never.exists());
    }
    let r = d.check(true).unwrap();
    assert!(r.all_repaired(), "{r:?}");
    assert!(!never.exists());
    assert!(d.check(false).unwrap().is_clean());
}

#[test]
fn marker_directory_missing_or_not_a_directory() {
    if !require_root("marker_directory_missing_or_not_a_directory") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("a"), None, NONE).unwrap();
    d.create(&id("b"), Some(&id("a")), NONE).unwrap();
    let dir = d.layout().incomplete_dir();
    // Gone (removed by hand): no layer is marked.
    std::fs::remove_dir(&dir).unwrap();
    assert!(d.check(false).unwrap().is_clean());
    d.get(&id("b"), "").unwrap();
    d.put(&id("b")).unwrap();
    // Not a directory: which layers are incomplete cannot be known, so nothing is claimed.
    std::fs::write(&dir, b"").unwrap();
    let e = d.check(false).unwrap_err();
    assert!(e.to_string().contains("read directory"), "{e}");
    let e = d.get(&id("b"), "").unwrap_err();
    assert!(e.to_string().contains("read directory"), "{e}");
    assert!(h.mounts().is_empty());
    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    assert!(d.check(false).unwrap().is_clean());
}

#[test]
fn marker_that_cannot_be_opened_is_an_error() {
    if !require_root("marker_that_cannot_be_opened_is_an_error") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("a"), None, NONE).unwrap();
    // A marker that is a symlink to itself (a damaged home): whether a fill of the layer is
    // live or left it incomplete cannot be known, and nothing is assumed.
    let loops = |l: &str| {
        let m = d.layout().incomplete(&id(l));
        std::os::unix::fs::symlink(m.file_name().unwrap(), &m).unwrap();
        m
    };
    let (ma, mghost) = (loops("a"), loops("ghost"));
    for e in [
        d.begin_fill(&id("a")).unwrap_err(),
        d.check(false).unwrap_err(),
        d.get(&id("a"), "").unwrap_err(),
        d.remove(&id("ghost")).unwrap_err(),
    ] {
        assert!(e.to_string().contains("open incomplete marker"), "{e}");
    }
    assert!(d.exists(&id("a")));
    std::fs::remove_file(ma).unwrap();
    std::fs::remove_file(mghost).unwrap();
    assert!(d.check(false).unwrap().is_clean());
    d.get(&id("a"), "").unwrap();
    d.put(&id("a")).unwrap();
}

/// Reads `tar`; before the first read, puts a directory where the mount count `count` is.
struct BreaksCount {
    tar: std::io::Cursor<Vec<u8>>,
    count: std::path::PathBuf,
    broken: bool,
}

impl Read for BreaksCount {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.broken {
            self.broken = true;
            std::fs::remove_file(&self.count)?;
            std::fs::create_dir(&self.count)?;
        }
        self.tar.read(buf)
    }
}

#[test]
fn apply_through_a_mount_reports_a_failed_release() {
    if !require_root("apply_through_a_mount_reports_a_failed_release") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("a"), None, NONE).unwrap();
    d.create(&id("b"), Some(&id("a")), NONE).unwrap();
    let l = id("layer");
    d.create(&l, Some(&id("b")), NONE).unwrap();
    // Not the direct parent: applied through the layer's mount, which the apply takes and
    // gives back. Its count becomes unreadable meanwhile, so giving it back fails: said, not
    // swallowed, and the mount stays for whoever else may hold it.
    let count = h.home().join(".strata/mounts/layer");
    let tar = BreaksCount {
        tar: std::io::Cursor::new(files_tar(&[("f", "x")])),
        count: count.clone(),
        broken: false,
    };
    let e = d.apply_diff(&l, Some(&id("a")), tar).unwrap_err();
    assert!(e.to_string().contains("read mount count"), "{e}");
    assert_eq!(h.mounts().len(), 1);
    assert_eq!(
        std::fs::read_to_string(d.layout().diff(&l).join("f")).unwrap(),
        "x",
        "the apply itself completed"
    );
    std::fs::remove_dir(&count).unwrap();
    std::fs::write(&count, "1").unwrap();
    d.put(&l).unwrap();
    assert!(h.mounts().is_empty());
    assert!(d.check(false).unwrap().is_clean());
}
