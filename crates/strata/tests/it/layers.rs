//! Create, remove, metadata and the on-disk format.

use std::os::unix::fs::PermissionsExt;

use strata::{Driver, Error, LayerId, Options, StorageOpts};
use strata_testkit::layer_id as id;
use strata_testkit::{require_root, TempHome};

const NONE: &StorageOpts = &StorageOpts {
    size: None,
    inodes: None,
};

#[test]
fn create_child_writes_docker_overlay2_format() {
    if !require_root("create_child_writes_docker_overlay2_format") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let (a, b) = (id("a"), id("b"));
    d.create(&a, None, NONE).unwrap();
    let la = std::fs::read_to_string(h.home().join("a/link")).unwrap();
    assert_eq!(
        la.len(),
        26,
        "link file holds exactly the 26-char id, no newline"
    );
    assert_eq!(
        std::fs::read_link(h.home().join("l").join(&la))
            .unwrap()
            .to_str()
            .unwrap(),
        "../a/diff"
    );
    assert!(
        !h.home().join("a/lower").exists(),
        "base layer has no lower file"
    );
    assert!(!h.home().join("a/work").exists());
    assert_eq!(
        std::fs::metadata(h.home().join("a/diff"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    d.create(&b, Some(&a), NONE).unwrap();
    assert_eq!(
        std::fs::read_to_string(h.home().join("b/lower")).unwrap(),
        format!("l/{la}")
    );
    assert!(h.home().join("b/work").is_dir());
    assert!(
        h.home().join("a/committed").exists(),
        "parent marked committed"
    );
    assert_eq!(
        std::fs::metadata(h.home().join("a/committed"))
            .unwrap()
            .len(),
        0
    );
    let c = id("c");
    d.create_read_write(&c, Some(&b), NONE).unwrap();
    let lb = std::fs::read_to_string(h.home().join("b/link")).unwrap();
    assert_eq!(
        std::fs::read_to_string(h.home().join("c/lower")).unwrap(),
        format!("l/{lb}:l/{la}")
    );
    let md = d.metadata(&c).unwrap();
    assert_eq!(
        md["UpperDir"],
        h.home().join("c/diff").display().to_string()
    );
    assert_eq!(md["WorkDir"], h.home().join("c/work").display().to_string());
    assert_eq!(
        md["MergedDir"],
        h.home().join("c/merged").display().to_string()
    );
    assert_eq!(
        md["LowerDir"],
        format!(
            "{}:{}",
            h.home().join("b/diff").display(),
            h.home().join("a/diff").display()
        )
    );
    assert!(!d.metadata(&a).unwrap().contains_key("LowerDir"));
    for l in [&c, &b, &a] {
        d.remove(l).unwrap();
    }
    assert_eq!(
        std::fs::read_dir(h.home().join("l")).unwrap().count(),
        0,
        "links removed"
    );
}

#[test]
fn create_existing_or_missing_parent_is_refused() {
    if !require_root("create_existing_or_missing_parent_is_refused") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("x"), None, NONE).unwrap();
    assert!(matches!(
        d.create(&id("x"), None, NONE),
        Err(Error::LayerExists { .. })
    ));
    let e = d.create(&id("s"), Some(&id("s")), NONE).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidId { reason, .. } if reason.contains("own parent")),
        "{e:?}"
    );
    assert!(!d.exists(&id("s")));
    let e = d.create(&id("y"), Some(&id("nope")), NONE).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(!d.exists(&id("y")));
    let sized = StorageOpts {
        size: Some(1 << 20),
        inodes: None,
    };
    let e = d.create(&id("z"), None, &sized).unwrap_err();
    assert!(
        e.to_string()
            .contains("only supported for read-write layers"),
        "{e}"
    );
    assert!(!d.exists(&id("z")));
    d.remove(&id("x")).unwrap();
    // No staging left behind by the refusals.
    assert_eq!(
        std::fs::read_dir(h.home().join(".strata/staging"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn create_read_write_size_without_quota_support_is_clear_error() {
    if !require_root("create_read_write_size_without_quota_support_is_clear_error") {
        return;
    }
    let h = TempHome::new();
    let sized = StorageOpts {
        size: Some(10 << 20),
        inodes: None,
    };
    let e = h
        .driver
        .create_read_write(&id("rw"), None, &sized)
        .unwrap_err();
    assert!(
        e.to_string().contains("not supported on this filesystem"),
        "{e}"
    );
    assert!(!h.driver.exists(&id("rw")));
}

#[test]
fn create_chain_beyond_limit_is_refused() {
    if !require_root("create_chain_beyond_limit_is_refused") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let limit = if d.probes().new_mount_api { 500 } else { 128 };
    let mut parent: Option<LayerId> = None;
    let mut made = 0;
    loop {
        let l = id(&format!("c{made:03}"));
        match d.create(&l, parent.as_ref(), NONE) {
            Ok(()) => {
                made += 1;
                parent = Some(l);
            }
            Err(e) => {
                assert!(
                    matches!(e, Error::ChainTooLong { depth, .. } if depth == made + 1),
                    "{e:?}"
                );
                assert!(
                    e.to_string()
                        .contains(&format!("chain would hold {} layers", made + 1)),
                    "{e}"
                );
                break;
            }
        }
        assert!(made <= 600, "no chain limit enforced");
    }
    if d.probes().new_mount_api {
        assert_eq!(made, limit, "a chain of exactly 500 layers is allowed");
    } else {
        assert!(made >= limit, "legacy limit {made} below Docker's 128");
    }
    for i in (0..made).rev() {
        d.remove(&id(&format!("c{i:03}"))).unwrap();
    }
}

#[test]
fn create_chain_beyond_legacy_page_limit_is_refused() {
    if !require_root("create_chain_beyond_legacy_page_limit_is_refused") {
        return;
    }
    let h = TempHome::with_options(Options::parse(["strata.mount_api=legacy"]).unwrap());
    let d = &h.driver;
    let mut parent: Option<LayerId> = None;
    let mut made = 0;
    let err = loop {
        let l = id(&format!("c{made:03}"));
        match d.create(&l, parent.as_ref(), NONE) {
            Ok(()) => {
                made += 1;
                parent = Some(l);
            }
            Err(e) => break e,
        }
        assert!(made <= 500, "no legacy chain limit enforced");
    };
    assert!(
        err.to_string().contains("legacy mount(2) within one page"),
        "{err}"
    );
    assert!(
        matches!(err, Error::ChainTooLong { depth, .. } if depth == made + 1),
        "{err:?}"
    );
    assert!(made >= 128, "legacy limit {made} below Docker's 128");
    // The deepest chain allowed really mounts, read-write and read-only.
    let top = parent.unwrap();
    let root = d.get(&top, "").unwrap();
    std::fs::write(root.join("x"), b"").unwrap();
    d.put(&top).unwrap();
    let below = id(&format!("c{:03}", made - 2));
    d.get(&below, "").unwrap();
    d.put(&below).unwrap();
    for i in (0..made).rev() {
        d.remove(&id(&format!("c{i:03}"))).unwrap();
    }
}

#[test]
fn remove_is_idempotent_and_stays_in_home() {
    if !require_root("remove_is_idempotent_and_stays_in_home") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.remove(&id("never-existed")).unwrap();
    // A hostile home entry: a layer name that is a symlink to a directory outside the home.
    let outside = h.outside().join("victim");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("canary"), b"keep").unwrap();
    std::os::unix::fs::symlink(&outside, h.home().join("evil")).unwrap();
    d.remove(&id("evil")).unwrap();
    assert_eq!(std::fs::read(outside.join("canary")).unwrap(), b"keep");
    assert!(std::fs::symlink_metadata(h.home().join("evil")).is_err());
    assert!("".parse::<LayerId>().is_err(), "empty id refused");
    assert!("../x".parse::<LayerId>().is_err());
}

#[test]
fn remove_mounted_layer_unmounts_it() {
    if !require_root("remove_mounted_layer_unmounts_it") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("p"), None, NONE).unwrap();
    d.create_read_write(&id("q"), Some(&id("p")), NONE).unwrap();
    d.get(&id("q"), "").unwrap();
    assert_eq!(h.mounts().len(), 1);
    d.remove(&id("q")).unwrap();
    assert!(h.mounts().is_empty());
    d.remove(&id("p")).unwrap();
}

#[test]
fn open_unknown_option_names_it() {
    let e = Options::parse(["overlay2.sise=10G"]).unwrap_err();
    assert!(e.to_string().contains("overlay2.sise"), "{e}");
}

#[test]
fn open_size_option_without_quota_support_is_refused() {
    if !require_root("open_size_option_without_quota_support_is_refused") {
        return;
    }
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let e = Driver::open(
        dir.path().join("h"),
        Options::parse(["overlay2.size=1G"]).unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("overlay2.size"), "{e}");
}

#[test]
fn open_on_overlay_backing_fs_is_refused_with_hint() {
    if !require_root("open_on_overlay_backing_fs_is_refused_with_hint") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("b"), None, NONE).unwrap();
    d.create_read_write(&id("t"), Some(&id("b")), NONE).unwrap();
    let root = d.get(&id("t"), "").unwrap();
    let e = Driver::open(root.join("nested"), Options::default()).unwrap_err();
    assert!(e.to_string().contains("overlayfs"), "{e}");
    assert!(e.to_string().contains("ext4 or xfs"), "{e}");
    d.put(&id("t")).unwrap();
}

#[test]
fn create_with_id_maps_gives_layer_dirs_to_remapped_root() {
    if !require_root("create_with_id_maps_gives_layer_dirs_to_remapped_root") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let range = |host| strata::IdMapping {
        container_id: 0,
        host_id: host,
        size: 65536,
    };
    let maps = strata::IdMaps {
        uids: vec![range(100_000)],
        gids: vec![range(200_000)],
    };
    let d = Driver::open_with_id_maps(dir.path().join("h"), Options::default(), maps).unwrap();
    d.create(&id("b"), None, NONE).unwrap();
    d.create_read_write(&id("t"), Some(&id("b")), NONE).unwrap();
    for p in ["b/diff", "t/diff", "t/work"] {
        let m = std::fs::metadata(d.home().join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (100_000, 200_000), "{p}");
    }
    let root = d.get(&id("t"), "").unwrap();
    let m = std::fs::metadata(d.home().join("t/work/work")).unwrap();
    assert_eq!((m.uid(), m.gid()), (100_000, 200_000));
    assert!(root.is_dir());
    d.put(&id("t")).unwrap();
    d.cleanup().unwrap();
}

#[test]
fn status_reports_probes() {
    if !require_root("status_reports_probes") {
        return;
    }
    let h = TempHome::new();
    let s: std::collections::BTreeMap<String, String> = h.driver.status().into_iter().collect();
    let fs = strata_sys_fs_name(h.home());
    assert_eq!(s["Backing Filesystem"], fs);
    assert_eq!(s["Supports d_type"], "true");
    assert_eq!(
        s["Native Overlay Diff"], "true",
        "6.x kernels without redirect_dir give native diffs"
    );
    assert_eq!(s["Project Quota"], "false");
    assert!(s["Project Quota Detail"].len() > 10);
    assert!(s.contains_key("Mount API"));
    // The native-diff probe leaves nothing behind.
    assert_eq!(
        std::fs::read_dir(h.home().join(".strata/staging"))
            .unwrap()
            .count(),
        0
    );
}

fn strata_sys_fs_name(p: &std::path::Path) -> String {
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(p)
        .output()
        .unwrap();
    match String::from_utf8_lossy(&out.stdout).trim() {
        "ext2/ext3" => "extfs".to_owned(),
        other => other.to_owned(),
    }
}

#[test]
fn parent_reads_direct_parent() {
    if !require_root("parent_reads_direct_parent") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("a"), None, NONE).unwrap();
    d.create(&id("b"), Some(&id("a")), NONE).unwrap();
    d.create_read_write(&id("c"), Some(&id("b")), NONE).unwrap();
    assert_eq!(d.parent(&id("a")).unwrap(), None);
    assert_eq!(d.parent(&id("c")).unwrap(), Some(id("b")));
    assert!(d.parent(&id("zz")).unwrap_err().is_not_found());
}

#[test]
fn dependents_are_the_descendants_only() {
    if !require_root("dependents_are_the_descendants_only") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    d.create(&id("a"), None, NONE).unwrap();
    d.create(&id("b"), Some(&id("a")), NONE).unwrap();
    d.create_read_write(&id("c"), Some(&id("b")), NONE).unwrap();
    d.create(&id("other"), None, NONE).unwrap();
    d.create(&id("sibling"), Some(&id("other")), NONE).unwrap();
    assert_eq!(d.dependents(&id("a")).unwrap(), [id("b"), id("c")]);
    assert_eq!(d.dependents(&id("b")).unwrap(), [id("c")]);
    assert_eq!(d.dependents(&id("c")).unwrap(), Vec::<LayerId>::new());
    assert_eq!(d.dependents(&id("other")).unwrap(), [id("sibling")]);
    assert!(d.dependents(&id("zz")).unwrap_err().is_not_found());
}

#[test]
fn remove_deletes_only_its_own_short_link() {
    if !require_root("remove_deletes_only_its_own_short_link") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let home = h.home().to_owned();
    d.create(&id("a"), None, NONE).unwrap();
    d.create(&id("b"), None, NONE).unwrap();
    let la = std::fs::read_to_string(home.join("a/link")).unwrap();
    let lb = std::fs::read_to_string(home.join("b/link")).unwrap();
    // Its own link goes with the layer.
    d.remove(&id("b")).unwrap();
    assert!(std::fs::symlink_metadata(home.join("l").join(&lb)).is_err());
    // A foreign tool made c's link file name a's short link: removing c leaves a's link.
    d.create(&id("c"), None, NONE).unwrap();
    let lc = std::fs::read_to_string(home.join("c/link")).unwrap();
    std::fs::write(home.join("c/link"), &la).unwrap();
    d.remove(&id("c")).unwrap();
    assert_eq!(
        std::fs::read_link(home.join("l").join(&la)).unwrap(),
        std::path::Path::new("../a/diff"),
        "another layer's short link stays"
    );
    // (c's own short link dangles now; check reports and repairs it.)
    std::fs::remove_file(home.join("l").join(&lc)).unwrap();
    // A link file naming a dangling short link of a layer long gone: the link goes too.
    d.create(&id("e"), None, NONE).unwrap();
    let le = std::fs::read_to_string(home.join("e/link")).unwrap();
    std::fs::remove_file(home.join("l").join(&le)).unwrap();
    std::os::unix::fs::symlink("../gone/diff", home.join("l").join(&le)).unwrap();
    d.remove(&id("e")).unwrap();
    assert!(std::fs::symlink_metadata(home.join("l").join(&le)).is_err());
    assert!(d.check(false).unwrap().is_clean());
    d.get(&id("a"), "").unwrap();
    d.put(&id("a")).unwrap();
}
