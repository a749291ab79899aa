//! Get/Put: reference counts across threads, driver instances (as processes) and restarts.

use std::sync::Arc;

use strata::{Driver, LayerId, Options, StorageOpts};
use strata_testkit::layer_id as id;
use strata_testkit::{require_root, TempHome};

const NONE: &StorageOpts = &StorageOpts {
    size: None,
    inodes: None,
};

fn two_layers(d: &Driver) -> LayerId {
    d.create(&id("base"), None, NONE).unwrap();
    d.create_read_write(&id("top"), Some(&id("base")), NONE)
        .unwrap();
    id("top")
}

#[test]
fn get_base_layer_returns_diff_without_mount() {
    if !require_root("get_base_layer_returns_diff_without_mount") {
        return;
    }
    let h = TempHome::new();
    h.driver.create(&id("base"), None, NONE).unwrap();
    let p = h.driver.get(&id("base"), "").unwrap();
    assert_eq!(p, h.home().join("base/diff"));
    assert!(h.mounts().is_empty());
    h.driver.put(&id("base")).unwrap();
}

#[test]
fn get_concurrent_threads_share_one_mount() {
    if !require_root("get_concurrent_threads_share_one_mount") {
        return;
    }
    let h = TempHome::new();
    let top = two_layers(&h.driver);
    let d = Arc::new(Driver::open(h.home(), Options::default()).unwrap());
    let paths: Vec<_> = (0..8)
        .map(|_| {
            let d = Arc::clone(&d);
            let top = top.clone();
            std::thread::spawn(move || d.get(&top, "").unwrap())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(paths.iter().all(|p| p == &h.home().join("top/merged")));
    assert_eq!(h.mounts().len(), 1, "never mounted twice");
    for i in 0..8 {
        assert_eq!(h.mounts().len(), 1, "still mounted before put {i}");
        d.put(&top).unwrap();
    }
    assert!(h.mounts().is_empty());
    assert!(
        !h.home().join("top/merged").exists(),
        "merged removed after last put"
    );
}

#[test]
fn get_from_two_drivers_counts_across_instances() {
    if !require_root("get_from_two_drivers_counts_across_instances") {
        return;
    }
    let h = TempHome::new();
    let top = two_layers(&h.driver);
    // A second driver on the same home stands for a second process: shared state is on disk.
    let other = Driver::open(h.home(), Options::default()).unwrap();
    let p1 = h.driver.get(&top, "").unwrap();
    std::fs::write(p1.join("written"), b"1").unwrap();
    let p2 = other.get(&top, "").unwrap();
    assert_eq!(p1, p2);
    assert_eq!(h.mounts().len(), 1);
    h.driver.put(&top).unwrap();
    assert_eq!(h.mounts().len(), 1, "other still holds it");
    assert_eq!(std::fs::read(p2.join("written")).unwrap(), b"1");
    other.put(&top).unwrap();
    assert!(h.mounts().is_empty());
}

#[test]
fn get_after_restart_rederives_from_mount_table() {
    if !require_root("get_after_restart_rederives_from_mount_table") {
        return;
    }
    let h = TempHome::new();
    let top = two_layers(&h.driver);
    h.driver.get(&top, "").unwrap();
    // A crash that lost the stored count: the mount table still shows the mount.
    std::fs::remove_file(h.home().join(".strata/mounts/top")).unwrap();
    let restarted = Driver::open(h.home(), Options::default()).unwrap();
    restarted.get(&top, "").unwrap();
    assert_eq!(
        h.mounts().len(),
        1,
        "the existing mount is reused, not doubled"
    );
    restarted.put(&top).unwrap();
    assert_eq!(h.mounts().len(), 1, "the unknown holder keeps it mounted");
    restarted.put(&top).unwrap();
    assert!(h.mounts().is_empty());
}

#[test]
fn get_with_stale_count_remounts() {
    if !require_root("get_with_stale_count_remounts") {
        return;
    }
    let h = TempHome::new();
    let top = two_layers(&h.driver);
    let merged = h.driver.get(&top, "").unwrap();
    // Someone unmounted behind the store's back (or the machine rebooted).
    rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH).unwrap();
    assert!(h.mounts().is_empty());
    let p = h.driver.get(&top, "").unwrap();
    assert_eq!(h.mounts().len(), 1);
    std::fs::write(p.join("ok"), b"").unwrap();
    h.driver.put(&top).unwrap();
    assert!(h.mounts().is_empty(), "the stale count did not survive");
}

#[test]
fn put_unmounted_layer_is_harmless() {
    if !require_root("put_unmounted_layer_is_harmless") {
        return;
    }
    let h = TempHome::new();
    let top = two_layers(&h.driver);
    h.driver.put(&top).unwrap();
    assert!(h.mounts().is_empty());
}

#[test]
fn cleanup_unmounts_everything() {
    if !require_root("cleanup_unmounts_everything") {
        return;
    }
    let h = TempHome::new();
    let top = two_layers(&h.driver);
    h.driver
        .create_read_write(&id("top2"), Some(&id("base")), NONE)
        .unwrap();
    h.driver.get(&top, "").unwrap();
    h.driver.get(&top, "").unwrap();
    h.driver.get(&id("top2"), "").unwrap();
    assert_eq!(h.mounts().len(), 2);
    h.driver.cleanup().unwrap();
    assert!(h.mounts().is_empty());
    for l in ["top", "top2"] {
        assert!(
            !h.home().join(l).join("merged").exists(),
            "cleanup removed {l}'s mount point"
        );
    }
    assert_eq!(
        std::fs::read_dir(h.home().join(".strata/mounts"))
            .unwrap()
            .count(),
        0,
        "cleanup forgot every count"
    );
    // After cleanup the counts are gone: one get, one put.
    h.driver.get(&top, "").unwrap();
    h.driver.put(&top).unwrap();
    assert!(h.mounts().is_empty());
}

#[test]
fn get_missing_layer_is_not_found() {
    if !require_root("get_missing_layer_is_not_found") {
        return;
    }
    let h = TempHome::new();
    let e = h.driver.get(&id("ghost"), "").unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn unreadable_count_is_an_error_and_the_mount_stays() {
    if !require_root("unreadable_count_is_an_error_and_the_mount_stays") {
        return;
    }
    let h = TempHome::new();
    let top = two_layers(&h.driver);
    h.driver.get(&top, "").unwrap();
    h.driver.get(&top, "").unwrap();
    // The count of a layer two holders use cannot be read (a directory stands there). Taking
    // it for 0 would let this put unmount the layer under both holders.
    let count = h.home().join(".strata/mounts/top");
    std::fs::remove_file(&count).unwrap();
    std::fs::create_dir(&count).unwrap();
    let e = h.driver.put(&top).unwrap_err();
    assert!(e.to_string().contains("read mount count"), "{e}");
    assert_eq!(h.mounts().len(), 1, "still mounted for its holders");
    let e = h.driver.get(&top, "").unwrap_err();
    assert!(e.to_string().contains("read mount count"), "{e}");
    assert_eq!(h.mounts().len(), 1);
    std::fs::remove_dir(&count).unwrap();
    std::fs::write(&count, "2").unwrap();
    h.driver.put(&top).unwrap();
    assert_eq!(h.mounts().len(), 1);
    h.driver.put(&top).unwrap();
    assert!(h.mounts().is_empty());
}

#[test]
fn get_whose_count_cannot_be_written_leaves_nothing_mounted() {
    if !require_root("get_whose_count_cannot_be_written_leaves_nothing_mounted") {
        return;
    }
    let h = TempHome::new();
    let top = two_layers(&h.driver);
    // The new count cannot be written (as on a full disk): a directory stands where it is
    // written first.
    let tmp = h.home().join(".strata/mounts/.top.tmp");
    std::fs::create_dir(&tmp).unwrap();
    let e = h.driver.get(&top, "").unwrap_err();
    assert!(e.to_string().contains("write mount count"), "{e}");
    assert!(h.mounts().is_empty(), "the mount was taken back");
    assert!(!h.home().join("top/merged").exists(), "and its mount point");
    assert!(!h.home().join(".strata/mounts/top").exists());
    std::fs::remove_dir(&tmp).unwrap();
    let root = h.driver.get(&top, "").unwrap();
    std::fs::write(root.join("f"), b"").unwrap();
    h.driver.put(&top).unwrap();
    assert!(h.mounts().is_empty());
}

#[test]
fn remove_of_a_mounted_layer_forgets_its_count() {
    if !require_root("remove_of_a_mounted_layer_forgets_its_count") {
        return;
    }
    let h = TempHome::new();
    let top = two_layers(&h.driver);
    h.driver.get(&top, "").unwrap();
    h.driver.get(&top, "").unwrap();
    assert!(h.home().join(".strata/mounts/top").exists());
    h.driver.remove(&top).unwrap();
    assert!(h.mounts().is_empty());
    assert_eq!(
        std::fs::read_dir(h.home().join(".strata/mounts"))
            .unwrap()
            .count(),
        0,
        "no count outlives its layer"
    );
}
