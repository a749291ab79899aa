//! `check` and `check --repair` on homes damaged as a crash or a foreign tool would.

use strata::StorageOpts;
use strata_testkit::layer_id as id;
use strata_testkit::{require_root, TempHome};

const NONE: &StorageOpts = &StorageOpts {
    size: None,
    inodes: None,
};

fn kinds(r: &strata::CheckReport) -> Vec<String> {
    let mut v: Vec<String> = r.problems.iter().map(|p| p.kind.clone()).collect();
    v.sort();
    v
}

#[test]
fn check_clean_home_reports_nothing() {
    if !require_root("check_clean_home_reports_nothing") {
        return;
    }
    let h = TempHome::new();
    h.driver.create(&id("a"), None, NONE).unwrap();
    h.driver
        .create_read_write(&id("b"), Some(&id("a")), NONE)
        .unwrap();
    h.driver.get(&id("b"), "").unwrap();
    assert!(h.driver.check(false).unwrap().is_clean());
    h.driver.put(&id("b")).unwrap();
}

#[test]
fn check_repair_fixes_links_staging_and_mounts() {
    if !require_root("check_repair_fixes_links_staging_and_mounts") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("a"), None, NONE).unwrap();
    d.create(&id("b"), Some(&id("a")), NONE).unwrap();
    d.create_read_write(&id("c"), Some(&id("b")), NONE).unwrap();
    let home = h.home().to_owned();
    // 0. a mount nothing references (its count was lost).
    d.get(&id("c"), "").unwrap();
    std::fs::remove_file(home.join(".strata/mounts/c")).unwrap();
    // 1. a's link file lost (its short link survives and must be recovered, since b and c
    //    name it).
    let la = std::fs::read_to_string(home.join("a/link")).unwrap();
    std::fs::remove_file(home.join("a/link")).unwrap();
    // 2. b's short link lost.
    let lb = std::fs::read_to_string(home.join("b/link")).unwrap();
    std::fs::remove_file(home.join("l").join(&lb)).unwrap();
    // 3. a dangling link (crash between link and rename in create).
    std::os::unix::fs::symlink("../gone/diff", home.join("l/DANGLINGDANGLINGDANGLING12")).unwrap();
    // 4. a leftover staging dir (crash mid-create).
    std::fs::create_dir_all(home.join(".strata/staging/create-x.0000000000000001/diff")).unwrap();

    let r = d.check(false).unwrap();
    assert_eq!(
        kinds(&r),
        [
            "dangling-link",
            "leftover-staging",
            "missing-link",
            "missing-link-file",
            "unreferenced-mount"
        ]
    );
    assert!(r.problems.iter().all(|p| !p.repaired));
    let r = d.check(true).unwrap();
    assert!(r.all_repaired(), "{r:?}");
    assert!(d.check(false).unwrap().is_clean());
    assert_eq!(
        std::fs::read_to_string(home.join("a/link")).unwrap(),
        la,
        "link id recovered"
    );
    assert!(h.mounts().is_empty());
    assert!(
        !home.join("c/merged").exists(),
        "the unreferenced mount's mount point went with it"
    );
    // The repaired chain mounts and shows the base.
    let root = d.get(&id("c"), "").unwrap();
    std::fs::write(root.join("f"), b"").unwrap();
    d.put(&id("c")).unwrap();
}

#[test]
fn check_repair_removes_layer_whose_parent_is_gone() {
    if !require_root("check_repair_removes_layer_whose_parent_is_gone") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("a"), None, NONE).unwrap();
    d.create(&id("b"), Some(&id("a")), NONE).unwrap();
    // The parent vanished behind the store's back (rm -rf by hand).
    let la = std::fs::read_to_string(h.home().join("a/link")).unwrap();
    std::fs::remove_dir_all(h.home().join("a")).unwrap();
    std::fs::remove_file(h.home().join("l").join(la)).unwrap();
    let r = d.check(false).unwrap();
    assert_eq!(kinds(&r), ["missing-parent"]);
    assert!(!r.problems[0].repaired);
    assert!(d.exists(&id("b")), "check without repair removes nothing");
    let r = d.check(true).unwrap();
    assert_eq!(kinds(&r), ["missing-parent"]);
    assert!(r.all_repaired());
    assert!(!d.exists(&id("b")));
    assert!(d.check(false).unwrap().is_clean());
}

#[test]
fn check_reports_stale_mount_count_and_repair_clears_it() {
    if !require_root("check_reports_stale_mount_count_and_repair_clears_it") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("a"), None, NONE).unwrap();
    d.create_read_write(&id("b"), Some(&id("a")), NONE).unwrap();
    let merged = d.get(&id("b"), "").unwrap();
    d.get(&id("b"), "").unwrap();
    // Unmounted behind the store's back (or the machine rebooted): the count of 2 is stale.
    rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH).unwrap();
    let count = h.home().join(".strata/mounts/b");
    let r = d.check(false).unwrap();
    assert_eq!(kinds(&r), ["stale-mount-count"], "{r:?}");
    assert_eq!(r.problems[0].path, count);
    assert!(r.problems[0].detail.contains("count of 2"), "{r:?}");
    assert!(!r.problems[0].repaired);
    assert!(count.exists(), "check without repair changes nothing");
    let r = d.check(true).unwrap();
    assert_eq!(kinds(&r), ["stale-mount-count"]);
    assert!(r.all_repaired(), "{r:?}");
    assert!(!count.exists());
    assert!(d.check(false).unwrap().is_clean());
    // One get, one put from the clean count.
    d.get(&id("b"), "").unwrap();
    d.put(&id("b")).unwrap();
    assert!(h.mounts().is_empty());
}

#[test]
fn check_repair_leaves_what_it_cannot_fix_and_says_so() {
    if !require_root("check_repair_leaves_what_it_cannot_fix_and_says_so") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("a"), None, NONE).unwrap();
    // Not a symlink: nothing says which layer it belonged to, so repair leaves it.
    let stray = h.home().join("l/NOTALINKNOTALINKNOTALINK12");
    std::fs::write(&stray, b"").unwrap();
    for repair in [false, true] {
        let r = d.check(repair).unwrap();
        assert_eq!(kinds(&r), ["not-a-link"], "{r:?}");
        assert!(!r.is_clean());
        assert!(!r.all_repaired(), "repair {repair}: {r:?}");
    }
    assert!(stray.exists());
    std::fs::remove_file(&stray).unwrap();
    assert!(d.check(false).unwrap().is_clean());
}
